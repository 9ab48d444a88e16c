// Runs CUDA C++ kernels on the CPU, for testing kernel logic where there is no GPU.
//
// Force-included (g++ -include emulator.h) before a .cu file. Blocks run one after the
// other; the threads of a block run one after the other too, unless the kernel calls
// __syncthreads(), in which case each thread is a fiber (ucontext) and the barrier
// switches between them, so shared memory and the barrier behave as on a GPU. Launch
// arguments arrive as an array of pointers to each argument's bytes, as cuLaunchKernel
// takes them; each kernel's signature is exported as text so the caller can check the
// bytes it passes against the parameter types.
#pragma once

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {

inline dim3 thread_idx, block_idx, block_dim, grid_dim;

inline float int_as_float(int i) {
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

// -- fibers for kernels that synchronize -------------------------------------------------
//
// One fiber per thread slot of a block, each on its own stack. A fiber is started once
// (makecontext/setcontext) and then lives on: when the kernel body returns, it parks and
// the next block resumes it at the top of its loop. Switches use _setjmp/_longjmp, which
// do not save the signal mask and so make no system call.

constexpr unsigned max_threads = 1024;  // CUDA's limit per block

struct JumpBuffer {
    jmp_buf at;
};

struct Fibers {
    std::vector<ucontext_t> start = std::vector<ucontext_t>(max_threads);
    std::vector<std::vector<char>> stacks = std::vector<std::vector<char>>(max_threads);
    std::vector<JumpBuffer> resume = std::vector<JumpBuffer>(max_threads);
    std::vector<dim3> index = std::vector<dim3>(max_threads);
    std::vector<int> created = std::vector<int>(max_threads, 0);
    std::vector<int> done = std::vector<int>(max_threads, 0);
    jmp_buf scheduler;
    int current = -1;
    void (*body)() = nullptr;
};

inline Fibers fibers;
inline bool fibered = false;

inline void fiber_entry() {
    for (;;) {
        fibers.body();
        fibers.done[fibers.current] = 1;
        if (!_setjmp(fibers.resume[fibers.current].at)) _longjmp(fibers.scheduler, 1);
    }
}

inline void sync_threads() {
    if (!fibered) {  // the launcher did not see this kernel synchronize
        fputs("emulator: __syncthreads() in a kernel launched without fibers\n", stderr);
        abort();
    }
    if (!_setjmp(fibers.resume[fibers.current].at)) _longjmp(fibers.scheduler, 1);
}

// Runs every thread of the current block as a fiber, round by round: each round lets
// every unfinished thread run to its next barrier or to its end.
inline void run_block_fibers(void (*body)(), unsigned threads) {
    constexpr std::size_t stack_bytes = 64 * 1024;
    static ucontext_t blank;
    static bool have_blank = false;
    if (!have_blank) {
        getcontext(&blank);
        have_blank = true;
    }
    Fibers& f = fibers;
    f.body = body;
    unsigned t = 0;
    for (unsigned z = 0; z < block_dim.z; ++z)
        for (unsigned y = 0; y < block_dim.y; ++y)
            for (unsigned x = 0; x < block_dim.x; ++x, ++t) {
                f.index[t] = dim3{x, y, z};
                f.done[t] = 0;
            }
    for (bool running = true; running;) {
        running = false;
        for (t = 0; t < threads; ++t) {
            if (f.done[t]) continue;
            f.current = static_cast<int>(t);
            thread_idx = f.index[t];
            if (!_setjmp(f.scheduler)) {
                if (f.created[t]) _longjmp(f.resume[t].at, 1);  // at a barrier, or parked
                f.created[t] = 1;
                f.stacks[t].resize(stack_bytes);
                f.start[t] = blank;
                f.start[t].uc_stack.ss_sp = f.stacks[t].data();
                f.start[t].uc_stack.ss_size = stack_bytes;
                f.start[t].uc_link = nullptr;
                makecontext(&f.start[t], fiber_entry, 0);
                setcontext(&f.start[t]);
            }
            running = running || !f.done[t];
        }
    }
}

// -- launching ---------------------------------------------------------------------------

template <typename X>
std::string type_code() {
    using U = std::remove_cv_t<X>;
    if constexpr (std::is_pointer_v<U>) {
        return "p" + type_code<std::remove_pointer_t<U>>();
    } else if constexpr (std::is_same_v<U, bool>) {
        return "b1";
    } else if constexpr (std::is_floating_point_v<U>) {
        return "f" + std::to_string(sizeof(U));
    } else if constexpr (std::is_signed_v<U>) {
        return "i" + std::to_string(sizeof(U));
    } else {
        return "u" + std::to_string(sizeof(U));
    }
}

template <typename... A>
std::string signature() {
    std::string s;
    ((s += type_code<A>() + ","), ...);
    if (!s.empty()) s.pop_back();
    return s;
}

template <typename... A, std::size_t... I>
void call(void (*kernel)(A...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(args[I])...);
}

struct Entry {
    std::string signature;
    void (*launch)(dim3, dim3, void**, bool);
};

// Runs one kernel instance over a whole grid, block after block.
template <auto Kernel, typename... A>
struct Launch {
    static inline void** args = nullptr;

    static void body() { call(Kernel, args, std::index_sequence_for<A...>{}); }

    static void run(dim3 grid, dim3 block, void** a, bool sync) {
        args = a;
        grid_dim = grid;
        block_dim = block;
        fibered = sync;
        unsigned threads = block.x * block.y * block.z;
        for (unsigned bz = 0; bz < grid.z; ++bz)
            for (unsigned by = 0; by < grid.y; ++by)
                for (unsigned bx = 0; bx < grid.x; ++bx) {
                    block_idx = dim3{bx, by, bz};
                    if (sync) {
                        run_block_fibers(body, threads);
                        continue;
                    }
                    for (unsigned tz = 0; tz < block.z; ++tz)
                        for (unsigned ty = 0; ty < block.y; ++ty)
                            for (unsigned tx = 0; tx < block.x; ++tx) {
                                thread_idx = dim3{tx, ty, tz};
                                body();
                            }
                }
    }
};

// One entry per kernel instance: its signature and its launcher.
template <auto Kernel, typename... A>
Entry entry(void (*)(A...)) {
    return Entry{signature<A...>(), &Launch<Kernel, A...>::run};
}

}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __syncthreads() emu::sync_threads()
#define __int_as_float(i) emu::int_as_float(i)
