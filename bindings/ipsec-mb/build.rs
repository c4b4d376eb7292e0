//! Compiles the shim over the system intel-ipsec-mb (Debian `libipsec-mb-dev`, which DPDK's
//! `crypto_ipsec_mb` PMDs use too) and links the library.

fn main() {
    let header = std::path::Path::new("/usr/include/intel-ipsec-mb.h");
    if !header.exists() {
        panic!("intel-ipsec-mb.h not found (Debian package libipsec-mb-dev): run scripts/setup.sh");
    }
    cc::Build::new()
        .file("shim.c")
        .opt_level(3)
        .warnings(true)
        .compile("fgimb");
    println!("cargo:rustc-link-lib=IPSec_MB");
    println!("cargo:rerun-if-changed=shim.c");
}
