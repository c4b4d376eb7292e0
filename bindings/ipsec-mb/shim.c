/*
 * The few intel-ipsec-mb calls ferrogate makes, as plain functions: the library's direct API
 * is macros over function pointers in its IMB_MGR, whose layout changes between releases, so
 * Rust never sees the struct. One manager, set up once for the CPU (init_mb_mgr_auto picks
 * SSE/AVX/AVX2/AVX512+VAES code); after that it is only read, so every thread may use it.
 */
#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <intel-ipsec-mb.h>

static IMB_MGR *mgr;
static int arch = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
        IMB_MGR *m = alloc_mb_mgr(0);
        IMB_ARCH a = IMB_ARCH_NONE;

        if (m == NULL)
                return;
        init_mb_mgr_auto(m, &a);
        if (imb_get_errno(m) != 0 || a == IMB_ARCH_NONE) {
                free_mb_mgr(m);
                return;
        }
        mgr = m;
        arch = (int)a;
}

/* The IMB_ARCH in use (>= 1), or -1 when the library could not be set up. */
int fg_imb_arch(void)
{
        pthread_once(&once, init);
        return arch;
}

size_t fg_imb_gcm_key_size(void)
{
        return sizeof(struct gcm_key_data);
}

/* Expand a 16/24/32-octet AES key into kd (round keys and GHASH powers). 0 on success. */
int fg_imb_gcm_pre(uint32_t key_len, const uint8_t *key, struct gcm_key_data *kd)
{
        if (fg_imb_arch() < 0)
                return -1;
        switch (key_len) {
        case 16: IMB_AES128_GCM_PRE(mgr, key, kd); return 0;
        case 24: IMB_AES192_GCM_PRE(mgr, key, kd); return 0;
        case 32: IMB_AES256_GCM_PRE(mgr, key, kd); return 0;
        default: return -1;
        }
}

/*
 * Encrypt (dec == 0) or decrypt buf[0..len] in place under the 12-octet IV, authenticating
 * aad[0..aad_len]; the 16-octet tag goes to tag. Only called with a key_len fg_imb_gcm_pre
 * accepted, so mgr is set.
 */
void fg_imb_gcm(uint32_t key_len, int dec, const struct gcm_key_data *kd, uint8_t *buf,
                uint64_t len, const uint8_t *iv, const uint8_t *aad, uint64_t aad_len,
                uint8_t *tag)
{
        struct gcm_context_data ctx;

        switch (key_len | (dec ? 1 : 0)) {
        case 16: IMB_AES128_GCM_ENC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        case 17: IMB_AES128_GCM_DEC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        case 24: IMB_AES192_GCM_ENC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        case 25: IMB_AES192_GCM_DEC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        case 32: IMB_AES256_GCM_ENC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        case 33: IMB_AES256_GCM_DEC(mgr, kd, &ctx, buf, buf, len, iv, aad, aad_len, tag, 16); break;
        default: break;
        }
}
