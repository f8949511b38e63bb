// IlgpuOct cuda-host: the CUDA built-ins that generated CUDA C uses, for the host C++ compiler.
// A kernel's translation unit is compiled after this header into a shared library that runs one
// block at a time per OS thread: every CUDA thread of the block is a fiber with its own stack,
// __syncthreads and warp shuffles switch fibers, so barrier and shuffle semantics are exact and
// shared memory (thread_local storage) is private to the block the OS thread is running.
// Nothing here may depend on the generated code's names beyond the CUDA API itself.
#ifndef IOCT_CUDA_HOST_H
#define IOCT_CUDA_HOST_H

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#if !defined(__x86_64__)
#error "cuda-host switches fibers with x86-64 assembly; other architectures are not supported"
#endif

// ---- CUDA declaration specifiers --------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// Block-scope thread_local is static storage per OS thread; one OS thread runs one block at a
// time, so a __shared__ array is private to the running block and shared by its fibers.
#define __shared__ thread_local
#define __constant__ const

struct ioct_uint3 { unsigned int x, y, z; };
typedef ioct_uint3 uint3;
typedef ioct_uint3 dim3;

static thread_local ioct_uint3 threadIdx;
static thread_local ioct_uint3 blockIdx;
static thread_local ioct_uint3 blockDim;
static thread_local ioct_uint3 gridDim;
static const int warpSize = 32;

namespace ioct_host {

enum FiberState { Runnable, AtBarrier, AtShuffle, AtWarpSync, AtMma, Finished };

struct Fiber {
    void* sp;                 // saved stack pointer while switched out
    unsigned char* stack;     // lowest address of its stack
    ioct_uint3 tid;
    int linear;
    FiberState state;
    unsigned long long value; // shuffle: the value this lane offers
    unsigned long long result;
    int source;               // shuffle: lane index (within the warp) this lane reads
    unsigned mask;
    int mma_shape;            // mma.sync: 1 m16n8k8.tf32, 2 m16n8k16.bf16
    float* mma_acc;           // this lane's C/D fragment (4 floats on its fiber stack)
    const unsigned* mma_a;    // A fragment registers (4)
    const unsigned* mma_b;    // B fragment registers (2)
#if defined(__SANITIZE_ADDRESS__)
    void* fake_stack;
#endif
};

// What the launcher hands in; the C# side declares the same layout (CudaHostLaunch).
struct Launch {
    int grid[3];
    int block[3];
    int dynamic_shared_bytes;
    int stack_bytes;
    void** args;
    unsigned char* stacks;    // block threads x stack_bytes, owned by the caller
    char* error;
    int error_capacity;
    int reserved;
};

struct BlockRun {
    const Launch* launch;
    Fiber* fibers;
    int count;
    int current;
    void* scheduler_sp;
    void (*body)(void**);
    bool failed;
};

static thread_local BlockRun* tl_run;
static thread_local unsigned int tl_dynamic_shared_bytes;
static thread_local Fiber* tl_fibers;
static thread_local int tl_fiber_capacity;

static const char* const kernel_name_for_errors = IOCT_HOST_KERNEL_NAME;

// ---- context switch ---------------------------------------------------------------------------
#if defined(__x86_64__)
// Saves the callee-saved registers, MXCSR and the x87 control word on the current stack, stores the
// stack pointer in *save and resumes the stack at next (System V x86-64 ABI).
extern "C" void ioct_host_switch(void** save, void* next);
__asm__(
    ".text\n"
    ".p2align 4\n"
    ".local ioct_host_switch\n"
    ".type ioct_host_switch,@function\n"
    "ioct_host_switch:\n"
    "    pushq %rbp\n    pushq %rbx\n    pushq %r12\n    pushq %r13\n    pushq %r14\n    pushq %r15\n"
    "    subq $8, %rsp\n    stmxcsr (%rsp)\n    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n    fldcw 4(%rsp)\n    addq $8, %rsp\n"
    "    popq %r15\n    popq %r14\n    popq %r13\n    popq %r12\n    popq %rbx\n    popq %rbp\n"
    "    ret\n"
    ".size ioct_host_switch, .-ioct_host_switch\n");
#endif

#if defined(__SANITIZE_ADDRESS__)
extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
extern "C" void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
#endif

static void fiber_main();

#if defined(__x86_64__)
static void* initial_sp(unsigned char* stack, size_t bytes)
{
    // Top of stack, 16-byte aligned; the slot ioct_host_switch's `ret` pops holds fiber_main and
    // sits at an address = 0 mod 16, so fiber_main starts with rsp = 8 mod 16 as after a call.
    uintptr_t top = ((uintptr_t)(stack + bytes)) & ~(uintptr_t)15;
    void** sp = (void**)(top - 16);
    sp[0] = (void*)&fiber_main;
    sp[1] = 0;
    sp -= 6;                                    // rbp rbx r12 r13 r14 r15
    for (int i = 0; i < 6; i++) sp[i] = 0;
    sp -= 1;                                    // MXCSR and x87 control word: the defaults
    unsigned int* control = (unsigned int*)sp;
    control[0] = 0x1f80u;
    control[1] = 0x037fu;
    return sp;
}
#endif

static void switch_to_fiber(BlockRun* run, int index)
{
    Fiber& f = run->fibers[index];
    run->current = index;
    threadIdx = f.tid;
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f.stack, (size_t)run->launch->stack_bytes);
#endif
    ioct_host_switch(&run->scheduler_sp, f.sp);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

static void switch_to_scheduler()
{
    BlockRun* run = tl_run;
    Fiber& f = run->fibers[run->current];
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(f.state == Finished ? nullptr : &f.fake_stack, nullptr, 0);
#endif
    ioct_host_switch(&f.sp, run->scheduler_sp);
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
}

static void fiber_main()
{
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
    BlockRun* run = tl_run;
    run->body(run->launch->args);
    run = tl_run;
    run->fibers[run->current].state = Finished;
    switch_to_scheduler();
    __builtin_trap(); // a finished fiber is never resumed
}

// Records the first error of the block (kernel, block, thread) and parks the calling fiber for good.
__attribute__((format(printf, 1, 2)))
static void fail(const char* format, ...)
{
    BlockRun* run = tl_run;
    if (!run->failed)
    {
        run->failed = true;
        const Launch* l = run->launch;
        Fiber& f = run->fibers[run->current];
        int n = snprintf(l->error, (size_t)l->error_capacity, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u): ",
            kernel_name_for_errors, blockIdx.x, blockIdx.y, blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
        if (n >= 0 && n < l->error_capacity)
        {
            va_list args;
            va_start(args, format);
            vsnprintf(l->error + n, (size_t)(l->error_capacity - n), format, args);
            va_end(args);
        }
    }
    run->fibers[run->current].state = Finished;
    switch_to_scheduler();
    __builtin_trap();
}

// Records an error without stopping the fiber (sanitizer findings: execution goes on, as a GPU would).
__attribute__((format(printf, 1, 2)))
static void report(const char* format, ...)
{
    BlockRun* run = tl_run;
    if (run == nullptr || run->failed)
    {
        return;
    }
    run->failed = true;
    const Launch* l = run->launch;
    Fiber& f = run->fibers[run->current];
    int n = snprintf(l->error, (size_t)l->error_capacity, "kernel %s, block (%u,%u,%u), thread (%u,%u,%u): ",
        kernel_name_for_errors, blockIdx.x, blockIdx.y, blockIdx.z, f.tid.x, f.tid.y, f.tid.z);
    if (n >= 0 && n < l->error_capacity)
    {
        va_list args;
        va_start(args, format);
        vsnprintf(l->error + n, (size_t)(l->error_capacity - n), format, args);
        va_end(args);
    }
}

static inline int lane_of(const Fiber& f) { return f.linear & 31; }

// mma.sync for the 32 lanes of a warp, exactly as TensorCore.cs on cpu-kernels: operands as the
// hardware reads them (TF32: top 19 bits of the register; BF16: the 16-bit halves), then per output
// d = c and d = fma(a[k], b[k], d) in k order in FP32 (the PTX ISA does not fix the hardware's order).
static inline float bits_to_float(unsigned bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline float tf32_operand(unsigned bits) { return bits_to_float(bits & 0xffffe000u); }
static inline float bf16_operand(unsigned bits) { return bits_to_float((bits & 0xffffu) << 16); }

static void mma_warp(Fiber* lanes, int shape)
{
    int k = shape == 1 ? 8 : 16;
    float a[16 * 16];  // [row][k]
    float b[16 * 8];   // [k][col]
    for (int lane = 0; lane < 32; lane++)
    {
        int g = lane >> 2, t = lane & 3;
        const unsigned* fa = lanes[lane].mma_a;
        const unsigned* fb = lanes[lane].mma_b;
        if (shape == 1)
        {
            for (int i = 0; i < 4; i++) a[(g + 8 * (i & 1)) * k + t + 4 * (i >> 1)] = tf32_operand(fa[i]);
            for (int i = 0; i < 2; i++) b[(t + 4 * i) * 8 + g] = tf32_operand(fb[i]);
        }
        else
        {
            for (int r = 0; r < 4; r++)
                for (int h = 0; h < 2; h++) a[(g + 8 * (r & 1)) * k + 2 * t + h + 8 * (r >> 1)] = bf16_operand(fa[r] >> (16 * h));
            for (int r = 0; r < 2; r++)
                for (int h = 0; h < 2; h++) b[(2 * t + h + 8 * r) * 8 + g] = bf16_operand(fb[r] >> (16 * h));
        }
    }
    for (int lane = 0; lane < 32; lane++)
    {
        int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; i++)
        {
            int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
            float sum = lanes[lane].mma_acc[i];
            for (int p = 0; p < k; p++) sum = fmaf(a[row * k + p], b[p * 8 + col], sum);
            lanes[lane].mma_acc[i] = sum;
        }
    }
}

// Resolves an mma.sync of warp w: all 32 lanes must be there, at the same shape.
static bool try_resolve_mma(BlockRun* run, int w, int first, int last)
{
    const char* why = nullptr;
    int lane = 0;
    if (last - first != 32) why = "the warp has fewer than 32 threads (make the block size a multiple of 32)";
    for (int i = first; why == nullptr && i < last; i++)
    {
        lane = i - first;
        if (run->fibers[i].state != AtMma) why = "a lane has exited or waits at another warp operation";
        else if (run->fibers[i].mma_shape != run->fibers[first].mma_shape) why = "lanes wait at mma.sync of different shapes";
    }
    if (why != nullptr)
    {
        run->current = first + lane;
        threadIdx = run->fibers[first + lane].tid;
        report("mma.sync: warp %d, lane %d: %s; every lane of the warp must execute the same mma.sync", w, lane, why);
        return false;
    }
    mma_warp(run->fibers + first, run->fibers[first].mma_shape);
    for (int i = first; i < last; i++) run->fibers[i].state = Runnable;
    return true;
}

// Resolves the shuffles of warp w once every live lane has arrived: returns true when it did.
static bool try_resolve_warp(BlockRun* run, int w, bool* blocked_mixed)
{
    int first = w * 32;
    int last = first + 32 < run->count ? first + 32 : run->count;
    int shuffling = 0, syncing = 0, other = 0, mma = 0;
    for (int i = first; i < last; i++)
    {
        FiberState s = run->fibers[i].state;
        if (s == AtShuffle) shuffling++;
        else if (s == AtWarpSync) syncing++;
        else if (s == AtMma) mma++;
        else if (s != Finished) other++;
    }
    if (mma > 0)
    {
        return other > 0 ? false : try_resolve_mma(run, w, first, last);
    }
    if (shuffling + syncing == 0 || other > 0)
    {
        return false;
    }
    if (shuffling > 0 && syncing > 0)
    {
        *blocked_mixed = true;
        return false;
    }
    for (int i = first; i < last; i++)
    {
        Fiber& f = run->fibers[i];
        if (f.state == AtShuffle)
        {
            Fiber& src = run->fibers[first + f.source];
            if (first + f.source >= last || src.state != AtShuffle)
            {
                run->current = i;
                threadIdx = f.tid;
                report("__shfl_*_sync: lane %d reads lane %d, which %s (on a GPU the result is undefined)",
                    lane_of(f), f.source, first + f.source >= last ? "does not exist in this block" : "has exited or is not at this shuffle");
                return false;
            }
            f.result = src.value;
        }
    }
    for (int i = first; i < last; i++)
    {
        if (run->fibers[i].state == AtShuffle || run->fibers[i].state == AtWarpSync)
        {
            run->fibers[i].state = Runnable;
        }
    }
    return true;
}

// Steps the fibers of one block until all have finished; false (with the error written) on failure.
static bool run_block_fibers(BlockRun* run)
{
    int n = run->count;
    for (;;)
    {
        for (int i = 0; i < n && !run->failed; i++)
        {
            if (run->fibers[i].state == Runnable)
            {
                switch_to_fiber(run, i);
            }
        }
        if (run->failed)
        {
            return false;
        }
        int finished = 0, barrier = 0;
        for (int i = 0; i < n; i++)
        {
            FiberState s = run->fibers[i].state;
            if (s == Finished) finished++;
            else if (s == AtBarrier) barrier++;
        }
        if (finished == n)
        {
            return true;
        }
        bool progressed = false;
        if (barrier + finished == n)
        {
            for (int i = 0; i < n; i++)
            {
                if (run->fibers[i].state == AtBarrier) run->fibers[i].state = Runnable;
            }
            progressed = true;
        }
        else
        {
            bool mixed = false;
            for (int w = 0; w * 32 < n; w++)
            {
                progressed |= try_resolve_warp(run, w, &mixed);
                if (run->failed) return false;
            }
            if (!progressed)
            {
                // Nobody can move: lanes split between a barrier and a warp operation, or a barrier
                // that some live threads never reach while others wait at a shuffle.
                int waiting_barrier = -1, waiting_warp = -1;
                for (int i = 0; i < n; i++)
                {
                    FiberState s = run->fibers[i].state;
                    if (s == AtBarrier && waiting_barrier < 0) waiting_barrier = i;
                    if ((s == AtShuffle || s == AtWarpSync || s == AtMma) && waiting_warp < 0) waiting_warp = i;
                }
                int blame = waiting_warp >= 0 ? waiting_warp : (waiting_barrier >= 0 ? waiting_barrier : 0);
                run->current = blame;
                threadIdx = run->fibers[blame].tid;
                report("deadlock: thread %d waits at %s while thread %d waits at %s; every live thread of a block must reach the same __syncthreads, every live lane of a warp the same shuffle (divergent barrier or shuffle)",
                    waiting_warp >= 0 ? waiting_warp : blame, waiting_warp >= 0 ? (mixed ? "__syncwarp/shuffle mix" : "a warp shuffle") : "__syncthreads",
                    waiting_barrier >= 0 ? waiting_barrier : blame, waiting_barrier >= 0 ? "__syncthreads" : "a warp shuffle");
                return false;
            }
        }
    }
}

static inline Fiber& self() { return tl_run->fibers[tl_run->current]; }

template <typename T>
static inline unsigned long long to_bits(T v)
{
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    return bits;
}

template <typename T>
static inline T from_bits(unsigned long long bits)
{
    T v;
    memcpy(&v, &bits, sizeof(T));
    return v;
}

// PTX shfl.sync: c = ((32 - width) << 8) | (up ? 0 : 31); see the PTX ISA, "shfl.sync".
enum ShuffleMode { Idx, Up, Down, Bfly };

template <typename T>
static T shuffle(unsigned mask, T value, int b, int width, ShuffleMode mode)
{
    Fiber& f = self();
    int lane = lane_of(f);
    int c = ((32 - width) << 8) | (mode == Up ? 0 : 31);
    int segmask = (c >> 8) & 31;
    int cval = c & 31;
    int bval = b & 31;
    int maxLane = (lane & segmask) | (cval & ~segmask);
    int minLane = lane & segmask;
    int j;
    bool pval;
    switch (mode)
    {
        case Up: j = lane - bval; pval = j >= maxLane; break;
        case Down: j = lane + bval; pval = j <= maxLane; break;
        case Bfly: j = lane ^ bval; pval = j <= maxLane; break;
        default: j = minLane | (bval & ~segmask); pval = j <= maxLane; break;
    }
    if (!pval) j = lane;
    f.value = to_bits(value);
    f.source = j;
    f.mask = mask;
    f.state = AtShuffle;
    switch_to_scheduler();
    return from_bits<T>(self().result);
}

static inline void mma_arrive(int shape, float* acc, const unsigned* a, const unsigned* b)
{
    Fiber& f = self();
    f.mma_shape = shape;
    f.mma_acc = acc;
    f.mma_a = a;
    f.mma_b = b;
    f.state = AtMma;
    switch_to_scheduler();
}

} // namespace ioct_host

// ---- tensor cores: what the prelude's inline PTX does, emulated (see TensorCore.cs) -------------
static inline void ioct_host_mma_m16n8k8_tf32(float* acc, const float* a, const float* b)
{
    unsigned ra[4], rb[2];
    memcpy(ra, a, sizeof ra);
    memcpy(rb, b, sizeof rb);
    ioct_host::mma_arrive(1, acc, ra, rb);
}

static inline void ioct_host_mma_m16n8k16_bf16(float* acc, const unsigned int* a, const unsigned int* b)
{
    ioct_host::mma_arrive(2, acc, a, b);
}

// cvt.rna.tf32.f32 (ties away from zero), low 13 bits cleared; NaN -> 0x7fffe000.
static inline float ioct_host_cvt_rna_tf32(float x)
{
    unsigned bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7f800000u) == 0x7f800000u) bits = (bits & 0x007fffffu) != 0 ? 0x7fffe000u : bits;
    else bits = (bits + 0x1000u) & 0xffffe000u;
    float r;
    memcpy(&r, &bits, 4);
    return r;
}

// cvt.rn.bf16.f32 (ties to even); NaN -> 0x7fff.
static inline unsigned ioct_host_bf16_rn(float x)
{
    unsigned bits;
    memcpy(&bits, &x, 4);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
}

static inline unsigned int ioct_host_cvt_rn_bf16x2(float low, float high) { return ioct_host_bf16_rn(low) | (ioct_host_bf16_rn(high) << 16); }

static inline unsigned int ioct_host_dynamic_smem_size() { return ioct_host::tl_dynamic_shared_bytes; }

// ---- synchronisation --------------------------------------------------------------------------
static inline void __syncthreads()
{
    ioct_host::self().state = ioct_host::AtBarrier;
    ioct_host::switch_to_scheduler();
}

static inline void __syncwarp(unsigned mask = 0xffffffffu)
{
    ioct_host::self().mask = mask;
    ioct_host::self().state = ioct_host::AtWarpSync;
    ioct_host::switch_to_scheduler();
}

static inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

#define IOCT_HOST_SHUFFLES(T)                                                                                          \
    static inline T __shfl_sync(unsigned m, T v, int lane, int w = 32) { return ioct_host::shuffle<T>(m, v, lane, w, ioct_host::Idx); } \
    static inline T __shfl_up_sync(unsigned m, T v, unsigned d, int w = 32) { return ioct_host::shuffle<T>(m, v, (int)d, w, ioct_host::Up); } \
    static inline T __shfl_down_sync(unsigned m, T v, unsigned d, int w = 32) { return ioct_host::shuffle<T>(m, v, (int)d, w, ioct_host::Down); } \
    static inline T __shfl_xor_sync(unsigned m, T v, int x, int w = 32) { return ioct_host::shuffle<T>(m, v, x, w, ioct_host::Bfly); }
IOCT_HOST_SHUFFLES(int)
IOCT_HOST_SHUFFLES(unsigned int)
IOCT_HOST_SHUFFLES(long long)
IOCT_HOST_SHUFFLES(unsigned long long)
IOCT_HOST_SHUFFLES(float)
IOCT_HOST_SHUFFLES(double)
#undef IOCT_HOST_SHUFFLES

// ---- atomics (blocks run concurrently on several OS threads) ----------------------------------
#define IOCT_HOST_INT_ATOMICS(T)                                                                                      \
    static inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }                    \
    static inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }                    \
    static inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }                    \
    static inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                      \
    static inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }                    \
    static inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }                  \
    static inline T atomicCAS(T* a, T expected, T desired)                                                          \
    {                                                                                                               \
        __atomic_compare_exchange_n(a, &expected, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);              \
        return expected;                                                                                            \
    }                                                                                                               \
    static inline T atomicMin(T* a, T v)                                                                            \
    {                                                                                                               \
        T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                              \
        while (v < old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { } \
        return old;                                                                                                 \
    }                                                                                                               \
    static inline T atomicMax(T* a, T v)                                                                            \
    {                                                                                                               \
        T old = __atomic_load_n(a, __ATOMIC_SEQ_CST);                                                              \
        while (v > old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { } \
        return old;                                                                                                 \
    }
IOCT_HOST_INT_ATOMICS(int)
IOCT_HOST_INT_ATOMICS(unsigned int)
IOCT_HOST_INT_ATOMICS(long long)
IOCT_HOST_INT_ATOMICS(unsigned long long)
#undef IOCT_HOST_INT_ATOMICS

static inline unsigned int atomicInc(unsigned int* a, unsigned int limit)
{
    unsigned int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(a, &old, old >= limit ? 0u : old + 1u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { }
    return old;
}

static inline unsigned int atomicDec(unsigned int* a, unsigned int limit)
{
    unsigned int old = __atomic_load_n(a, __ATOMIC_SEQ_CST);
    while (!__atomic_compare_exchange_n(a, &old, (old == 0u || old > limit) ? limit : old - 1u, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) { }
    return old;
}

#define IOCT_HOST_FLOAT_ATOMICS(T, I)                                                                                 \
    static inline T atomicAdd(T* a, T v)                                                                            \
    {                                                                                                               \
        I* bits = (I*)a;                                                                                            \
        I old = __atomic_load_n(bits, __ATOMIC_SEQ_CST);                                                           \
        for (;;)                                                                                                    \
        {                                                                                                           \
            T sum = ioct_host::from_bits<T>((unsigned long long)old) + v;                                         \
            I desired = (I)ioct_host::to_bits(sum);                                                                \
            if (__atomic_compare_exchange_n(bits, &old, desired, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))        \
                return ioct_host::from_bits<T>((unsigned long long)old);                                           \
        }                                                                                                           \
    }                                                                                                               \
    static inline T atomicExch(T* a, T v)                                                                           \
    {                                                                                                               \
        I old = __atomic_exchange_n((I*)a, (I)ioct_host::to_bits(v), __ATOMIC_SEQ_CST);                             \
        return ioct_host::from_bits<T>((unsigned long long)old);                                                   \
    }
IOCT_HOST_FLOAT_ATOMICS(float, unsigned int)
IOCT_HOST_FLOAT_ATOMICS(double, unsigned long long)
#undef IOCT_HOST_FLOAT_ATOMICS

// ---- reinterpretation and conversion intrinsics (CUDA Math API semantics) ---------------------
static inline float __int_as_float(int x) { return ioct_host::from_bits<float>((unsigned int)x); }
static inline int __float_as_int(float x) { return (int)(unsigned int)ioct_host::to_bits(x); }
static inline float __uint_as_float(unsigned int x) { return ioct_host::from_bits<float>(x); }
static inline unsigned int __float_as_uint(float x) { return (unsigned int)ioct_host::to_bits(x); }
static inline double __longlong_as_double(long long x) { return ioct_host::from_bits<double>((unsigned long long)x); }
static inline long long __double_as_longlong(double x) { return (long long)ioct_host::to_bits(x); }

// The GPU's cvt.rzi: round toward zero, saturate, NaN -> 0 (C++'s cast is undefined out of range).
template <typename I, typename F>
static inline I ioct_host_cvt_rz(F x, I lo, I hi)
{
    if (x != x) return 0;
    if (x <= (F)lo) return lo;
    if (x >= (F)hi) return hi;
    return (I)x;
}
static inline int __float2int_rz(float x) { return ioct_host_cvt_rz<int>(x, (int)0x80000000, 0x7fffffff); }
static inline unsigned int __float2uint_rz(float x) { return ioct_host_cvt_rz<unsigned int>(x, 0u, 0xffffffffu); }
static inline long long __float2ll_rz(float x) { return ioct_host_cvt_rz<long long>(x, (long long)0x8000000000000000ULL, 0x7fffffffffffffffLL); }
static inline unsigned long long __float2ull_rz(float x) { return ioct_host_cvt_rz<unsigned long long>(x, 0ULL, ~0ULL); }
static inline int __double2int_rz(double x) { return ioct_host_cvt_rz<int>(x, (int)0x80000000, 0x7fffffff); }
static inline unsigned int __double2uint_rz(double x) { return ioct_host_cvt_rz<unsigned int>(x, 0u, 0xffffffffu); }
static inline long long __double2ll_rz(double x) { return ioct_host_cvt_rz<long long>(x, (long long)0x8000000000000000ULL, 0x7fffffffffffffffLL); }
static inline unsigned long long __double2ull_rz(double x) { return ioct_host_cvt_rz<unsigned long long>(x, 0ULL, ~0ULL); }
static inline int __float2int_rn(float x) { return __float2int_rz(rintf(x)); }
static inline int __float2int_rd(float x) { return __float2int_rz(floorf(x)); }
static inline int __float2int_ru(float x) { return __float2int_rz(ceilf(x)); }
static inline int __double2int_rn(double x) { return __double2int_rz(rint(x)); }
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned int x) { return (float)x; }
static inline double __int2double_rn(int x) { return (double)x; }
static inline float __double2float_rn(double x) { return (float)x; }

// ---- math: the C library's functions, plus CUDA's extra names --------------------------------
// expf, logf, sqrtf, fmaxf, rintf, ... come from <cmath> (glibc: correctly rounded or within 1 ulp;
// CUDA's documented ulp bounds are wider, so results may differ in the last bits from a GPU).
// glibc itself declares CUDA's __expf, __logf, __sinf, __cosf, __tanf, __powf, __log2f and exp10f.
using std::isnan;
using std::isinf;
using std::isfinite;
using std::signbit;
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
static inline float __fdividef(float x, float y) { return x / y; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline double __dadd_rn(double a, double b) { return a + b; }
static inline double __dmul_rn(double a, double b) { return a * b; }
static inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
static inline float __saturatef(float x) { return x != x ? 0.0f : (x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x)); }
static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned int)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x)
{
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    x = ((x >> 8) & 0x00ff00ffu) | ((x & 0x00ff00ffu) << 8);
    return (x >> 16) | (x << 16);
}
static inline int __mulhi(int a, int b) { return (int)(((long long)a * (long long)b) >> 32); }
static inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned int)(((unsigned long long)a * b) >> 32); }
static inline long long __mul64hi(long long a, long long b) { return (long long)(((__int128)a * (__int128)b) >> 64); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) { return (unsigned long long)(((unsigned __int128)a * b) >> 64); }
static inline int __mul24(int a, int b) { return (int)((unsigned int)((a << 8) >> 8) * (unsigned int)((b << 8) >> 8)); }
static inline unsigned int __umul24(unsigned int a, unsigned int b) { return (a & 0xffffffu) * (b & 0xffffffu); }
template <typename T> static inline T __ldg(const T* p) { return *p; }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned int umin(unsigned int a, unsigned int b) { return a < b ? a : b; }
static inline unsigned int umax(unsigned int a, unsigned int b) { return a > b ? a : b; }
static inline long long llmin(long long a, long long b) { return a < b ? a : b; }
static inline long long llmax(long long a, long long b) { return a > b ? a : b; }

// ---- launch: one block per call, through the argument slots cuLaunchKernel would take ---------
namespace ioct_host {
template <typename... A, size_t... I>
static inline void invoke_slots(void (*kernel)(A...), void** args, std::index_sequence<I...>) { kernel(*(A*)args[I]...); }

template <typename... A>
static inline void invoke(void (*kernel)(A...), void** args) { invoke_slots(kernel, args, std::index_sequence_for<A...>{}); }

static const unsigned long long stack_canary = 0x1badc0debadf00dULL;

static int run_block(const Launch* l, long long linear_block, void (*body)(void**))
{
    int count = l->block[0] * l->block[1] * l->block[2];
    if (count > tl_fiber_capacity)
    {
        Fiber* grown = (Fiber*)realloc(tl_fibers, sizeof(Fiber) * (size_t)count);
        if (grown == nullptr)
        {
            snprintf(l->error, (size_t)l->error_capacity, "kernel %s: out of host memory for %d fibers", kernel_name_for_errors, count);
            return 1;
        }
        tl_fibers = grown;
        tl_fiber_capacity = count;
    }
    long long gx = l->grid[0], gy = l->grid[1];
    blockIdx.x = (unsigned int)(linear_block % gx);
    blockIdx.y = (unsigned int)((linear_block / gx) % gy);
    blockIdx.z = (unsigned int)(linear_block / gx / gy);
    blockDim = ioct_uint3{ (unsigned int)l->block[0], (unsigned int)l->block[1], (unsigned int)l->block[2] };
    gridDim = ioct_uint3{ (unsigned int)l->grid[0], (unsigned int)l->grid[1], (unsigned int)l->grid[2] };
    tl_dynamic_shared_bytes = (unsigned int)l->dynamic_shared_bytes;
    size_t stack_bytes = (size_t)l->stack_bytes;
    for (int i = 0; i < count; i++)
    {
        Fiber& f = tl_fibers[i];
        memset(&f, 0, sizeof(Fiber));
        f.linear = i;
        f.tid = ioct_uint3{ (unsigned int)(i % l->block[0]), (unsigned int)((i / l->block[0]) % l->block[1]), (unsigned int)(i / (l->block[0] * l->block[1])) };
        f.stack = l->stacks + (size_t)i * stack_bytes;
        memcpy(f.stack, &stack_canary, sizeof(stack_canary));
        f.sp = initial_sp(f.stack, stack_bytes);
        f.state = Runnable;
    }
    BlockRun run{};
    run.launch = l;
    run.fibers = tl_fibers;
    run.count = count;
    run.body = body;
    tl_run = &run;
    bool ok = run_block_fibers(&run);
    tl_run = nullptr;
    for (int i = 0; i < count; i++)
    {
        if (memcmp(tl_fibers[i].stack, &stack_canary, sizeof(stack_canary)) != 0)
        {
            snprintf(l->error, (size_t)l->error_capacity, "kernel %s, block (%u,%u,%u), thread %d: overflowed its %d-byte fiber stack (large local arrays?); raise ILGPUOCT_CUDAHOST_STACK",
                kernel_name_for_errors, blockIdx.x, blockIdx.y, blockIdx.z, i, l->stack_bytes);
            return 1;
        }
    }
    return ok && !run.failed ? 0 : 1;
}
} // namespace ioct_host

#define IOCT_HOST_ENTRY(entry)                                                                                         \
    static void ioct_host_body(void** args) { ioct_host::invoke(&entry, args); }                                       \
    extern "C" __attribute__((visibility("default"))) int ioct_host_run_block(const ioct_host::Launch* l, long long b) \
    {                                                                                                                  \
        return ioct_host::run_block(l, b, &ioct_host_body);                                                            \
    }                                                                                                                  \
    extern "C" __attribute__((visibility("default"))) int ioct_host_abi_version() { return 1; }

// ---- sanitizer mode: our own UBSan handlers (no runtime library inside dotnet) ----------------
#if defined(IOCT_HOST_SANITIZE)
namespace ioct_host {
struct SourceLocation { const char* file; unsigned int line; unsigned int column; };
static void ub(const char* what, const void* data)
{
    const SourceLocation* at = (const SourceLocation*)data;
    if (tl_run == nullptr)
    {
        return;
    }
    report("undefined behaviour: %s at %s:%u:%u", what, at && at->file ? at->file : "?", at ? at->line : 0u, at ? at->column : 0u);
}
} // namespace ioct_host
#define IOCT_HOST_UB(name, what)                                                                                       \
    extern "C" __attribute__((visibility("hidden"))) void __ubsan_handle_##name(const void* d, ...) { ioct_host::ub(what, d); } \
    extern "C" __attribute__((visibility("hidden"))) void __ubsan_handle_##name##_abort(const void* d, ...) { ioct_host::ub(what, d); }
IOCT_HOST_UB(add_overflow, "signed integer overflow in +")
IOCT_HOST_UB(sub_overflow, "signed integer overflow in -")
IOCT_HOST_UB(mul_overflow, "signed integer overflow in *")
IOCT_HOST_UB(negate_overflow, "signed integer overflow in unary -")
IOCT_HOST_UB(divrem_overflow, "division by zero or INT_MIN / -1")
IOCT_HOST_UB(shift_out_of_bounds, "shift count out of range (negative or >= the operand's bits) or shifted-out sign")
IOCT_HOST_UB(out_of_bounds, "array index out of bounds (shared or local array)")
IOCT_HOST_UB(float_cast_overflow, "float-to-integer conversion out of the target's range (or NaN)")
IOCT_HOST_UB(load_invalid_value, "load of an invalid bool value")
IOCT_HOST_UB(type_mismatch_v1, "misaligned or null pointer access")
IOCT_HOST_UB(pointer_overflow, "pointer arithmetic overflow")
IOCT_HOST_UB(builtin_unreachable, "unreachable code reached")
IOCT_HOST_UB(missing_return, "function ended without return")
IOCT_HOST_UB(vla_bound_not_positive, "variable-length array bound not positive")
IOCT_HOST_UB(invalid_builtin, "invalid builtin argument")
IOCT_HOST_UB(nonnull_arg, "null passed as a nonnull argument")
IOCT_HOST_UB(implicit_conversion, "implicit conversion changed the value")
IOCT_HOST_UB(alignment_assumption, "alignment assumption violated")
#undef IOCT_HOST_UB
#endif

// The C library's object-like macros are not CUDA names: a kernel local called NULL, EOF or M_PI
// must compile here as it does under NVRTC (which has no system headers).
#undef NULL
#undef EOF
#undef BUFSIZ
#undef FILENAME_MAX
#undef FOPEN_MAX
#undef TMP_MAX
#undef L_tmpnam
#undef P_tmpdir
#undef SEEK_SET
#undef SEEK_CUR
#undef SEEK_END
#undef errno
#undef stdin
#undef stdout
#undef stderr
#undef INFINITY
#undef NAN
#undef HUGE_VAL
#undef HUGE_VALF
#undef HUGE_VALL
#undef MAXFLOAT
#undef FP_NAN
#undef FP_INFINITE
#undef FP_ZERO
#undef FP_SUBNORMAL
#undef FP_NORMAL
#undef FP_ILOGB0
#undef FP_ILOGBNAN
#undef MATH_ERRNO
#undef MATH_ERREXCEPT
#undef math_errhandling
#undef EXIT_SUCCESS
#undef EXIT_FAILURE
#undef RAND_MAX
#undef MB_CUR_MAX
#undef M_E
#undef M_LOG2E
#undef M_LOG10E
#undef M_LN2
#undef M_LN10
#undef M_PI
#undef M_PI_2
#undef M_PI_4
#undef M_1_PI
#undef M_2_PI
#undef M_2_SQRTPI
#undef M_SQRT2
#undef M_SQRT1_2
#undef va_start
#undef va_end
#undef va_arg
#undef va_copy

#endif // IOCT_CUDA_HOST_H
