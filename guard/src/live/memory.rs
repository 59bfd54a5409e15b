//! The allocator's part of the guard's memory.
//!
//! glibc serves an allocation above its mmap threshold (128 KiB at first) with a
//! mapping of its own, returned to the system when freed, but raises the threshold to
//! the size of every such block freed, up to 32 MiB. The guard frees a multi-megabyte
//! engine snapshot every checkpoint, so after the first one its snapshots, fetch
//! buffers and changelog records all came from the heap, where what they left behind
//! stayed resident: on a drain of a million fills over a thousand strategies the peak
//! RSS was ~30 % higher than with the threshold held (bench/README.md).

/// Holds glibc's mmap threshold at its initial 128 KiB, so large buffers go back to
/// the system when freed. Call it once, before the guard allocates much; it does
/// nothing on other C libraries.
pub fn hold_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_MMAP_THRESHOLD: std::os::raw::c_int = -3;
        unsafe extern "C" {
            fn mallopt(
                param: std::os::raw::c_int,
                value: std::os::raw::c_int,
            ) -> std::os::raw::c_int;
        }
        // SAFETY: mallopt only sets an allocator parameter; any value is accepted or
        // refused (returning 0), never undefined.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        }
    }
}
