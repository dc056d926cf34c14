//! Allocations per review of the 10 KB corpus pod: the injector's `Admission::review` under a
//! counting global allocator (counts every alloc and realloc, and their bytes). Deterministic,
//! unlike a timing: `cargo run --release -p proxy-injector-tools --example alloc_count`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts, then delegates to the system allocator.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

fn main() {
    use proxy_injector::admission::Admission;
    use proxy_injector::config::Config;
    use proxy_injector::namespaces::Namespaces;
    use proxy_injector_tools::corpus::{self, Size};
    let admission = Admission::new(Arc::new(Config::default()), Namespaces::empty());
    let body = corpus::injected_review_bytes(Size::Medium);
    for _ in 0..10 {
        admission.review(&body).unwrap();
    }
    let (a0, b0) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    let n = 1000;
    for _ in 0..n {
        std::hint::black_box(admission.review(&body).unwrap());
    }
    let (a1, b1) = (
        ALLOCS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
    );
    println!(
        "per review: {} allocations, {} bytes",
        (a1 - a0) / n,
        (b1 - b0) / n
    );
}
