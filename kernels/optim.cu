// fastnn CUDA kernels over many tensors in one launch: the optimizer updates of all
// parameters, and the finiteness check of a loss and its gradients.
//
// Multi-tensor form: P, G (and the state M, V) are device arrays of pointers, one per
// parameter tensor; offsets[t] is the flat index where tensor t starts (offsets[count] is
// the total), wd[t] its L2 weight decay. Each thread finds its tensor by a linear search
// (a network has a handful of tensors). Templated on the element type T; scalars are T.

template <typename T> __device__ __forceinline__ T f_sqrt(T x);
template <> __device__ __forceinline__ float f_sqrt<float>(float x) { return sqrtf(x); }
template <> __device__ __forceinline__ double f_sqrt<double>(double x) { return sqrt(x); }

__device__ __forceinline__ int tensor_of(const long long* offsets, int count, long long k) {
    int t = 0;
    while (t + 1 < count && k >= offsets[t + 1]) ++t;
    return t;
}

// P -= lr (G + wd P)
template <typename T>
__global__ void sgd(T** P, T** G, const long long* offsets, const T* wd, int count, T lr) {
    long long total = offsets[count];
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int t = tensor_of(offsets, count, k);
        long long e = k - offsets[t];
        T p = P[t][e];
        P[t][e] = p - lr * (G[t][e] + wd[t] * p);
    }
}

// g = G + wd P; V = mu V + g; P -= lr (g + mu V) if nesterov else lr V
template <typename T>
__global__ void momentum(T** P, T** G, T** V, const long long* offsets, const T* wd,
                         int count, T lr, T mu, int nesterov) {
    long long total = offsets[count];
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int t = tensor_of(offsets, count, k);
        long long e = k - offsets[t];
        T p = P[t][e];
        T g = G[t][e] + wd[t] * p;
        T v = mu * V[t][e] + g;
        V[t][e] = v;
        P[t][e] = p - lr * (nesterov ? g + mu * v : v);
    }
}

// Adam with bias corrections c1 = 1 - beta1^t, c2 = 1 - beta2^t.
template <typename T>
__global__ void adam(T** P, T** G, T** M, T** V, const long long* offsets, const T* wd,
                     int count, T lr, T beta1, T beta2, T eps, T c1, T c2) {
    long long total = offsets[count];
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int t = tensor_of(offsets, count, k);
        long long e = k - offsets[t];
        T p = P[t][e];
        T g = G[t][e] + wd[t] * p;
        T m = beta1 * M[t][e] + (T(1) - beta1) * g;
        T v = beta2 * V[t][e] + (T(1) - beta2) * g * g;
        M[t][e] = m;
        V[t][e] = v;
        P[t][e] = p - lr * (m / c1) / (f_sqrt(v / c2) + eps);
    }
}

// flags[thread] = whether every element the thread visits in A is finite, one flag per
// thread of the grid; the caller reduces them. Every thread writes its own flag, so
// nothing needs zeroing first and no thread waits for another.
template <typename T>
__global__ void all_finite(T** A, const long long* offsets, int count, bool* flags) {
    long long first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    long long total = offsets[count];
    bool ok = true;
    for (long long k = first; k < total; k += (long long)blockDim.x * gridDim.x) {
        int t = tensor_of(offsets, count, k);
        ok = ok && isfinite(A[t][k - offsets[t]]);
    }
    flags[first] = ok;
}

#ifdef FASTNN_INSTANTIATE
#define FASTNN_OPTIM(T)                                                                     \
    template __global__ void sgd<T>(T**, T**, const long long*, const T*, int, T);          \
    template __global__ void momentum<T>(T**, T**, T**, const long long*, const T*, int, T, \
                                         T, int);                                           \
    template __global__ void adam<T>(T**, T**, T**, T**, const long long*, const T*, int, T, \
                                     T, T, T, T, T);                                        \
    template __global__ void all_finite<T>(T**, const long long*, int, bool*);
FASTNN_OPTIM(float)
FASTNN_OPTIM(double)
#endif
