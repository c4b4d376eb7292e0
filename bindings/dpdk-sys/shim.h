/* DPDK's fast-path API is `static inline`, which a foreign linker cannot call: these
 * functions re-export exactly the ones ferrogate needs. */
#include <stdint.h>
struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

uint16_t fg_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t fg_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *fg_pktmbuf_alloc(struct rte_mempool *mp);
int fg_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
void fg_pktmbuf_free(struct rte_mbuf *m);
char *fg_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *fg_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *fg_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int fg_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t fg_mbuf_refcnt_read(const struct rte_mbuf *m);
uint16_t fg_mbuf_refcnt_update(struct rte_mbuf *m, int16_t v);
unsigned int fg_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n);
unsigned int fg_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n);
unsigned int fg_ring_count(const struct rte_ring *r);
unsigned int fg_ring_free_count(const struct rte_ring *r);
unsigned int fg_lcore_id(void);
uint64_t fg_rdtsc(void);
uint64_t fg_get_tsc_hz(void);
int fg_errno(void);
uint64_t fg_rss_hf_ip_tcp_udp(void);
uint64_t fg_rx_offload_rss_hash(void);
