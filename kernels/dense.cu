// fastnn CUDA kernels for dense layers, compiled at run time by cupy.RawModule (NVRTC).
//
// Templated on the element type T (float or double); the backend names an instance as
// "<kernel><float>" or "<kernel><double>" from the dtype. Matrices are row-major:
// Z (n x m) is a layer's pre-activation, H = act(Z) its output, dH and dZ the loss's
// gradients with respect to them, b (m) the bias. No fast-math: NaN and Inf propagate.

#ifndef INFINITY  // NVRTC compiles without the C library's headers
#define INFINITY __int_as_float(0x7f800000)
#endif

#define FASTNN_IDENTITY 0
#define FASTNN_SIGMOID 1
#define FASTNN_TANH 2
#define FASTNN_RELU 3

template <typename T> __device__ __forceinline__ T f_exp(T x);
template <> __device__ __forceinline__ float f_exp<float>(float x) { return expf(x); }
template <> __device__ __forceinline__ double f_exp<double>(double x) { return exp(x); }
template <typename T> __device__ __forceinline__ T f_log(T x);
template <> __device__ __forceinline__ float f_log<float>(float x) { return logf(x); }
template <> __device__ __forceinline__ double f_log<double>(double x) { return log(x); }
template <typename T> __device__ __forceinline__ T f_tanh(T x);
template <> __device__ __forceinline__ float f_tanh<float>(float x) { return tanhf(x); }
template <> __device__ __forceinline__ double f_tanh<double>(double x) { return tanh(x); }

// exp of a non-positive number only: never overflows
template <typename T> __device__ __forceinline__ T f_sigmoid(T z) {
    if (z >= T(0)) return T(1) / (T(1) + f_exp(-z));
    T e = f_exp(z);
    return e / (T(1) + e);
}

// In place: Z[i, j] = act(Z[i, j] + b[j]) for the elementwise activations.
template <typename T>
__global__ void bias_activation(T* Z, const T* b, long long n, int m, int code) {
    long long total = n * m;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        T v = Z[k] + b[k % m];
        if (code == FASTNN_RELU) v = v <= T(0) ? T(0) : v;  // NaN stays NaN
        else if (code == FASTNN_SIGMOID) v = f_sigmoid(v);
        else if (code == FASTNN_TANH) v = f_tanh(v);
        Z[k] = v;
    }
}

// d = softmax(z) over a row of m, one exp per element (d may be z); returns the row's
// log-sum-exp.
template <typename T>
__device__ __forceinline__ T softmax_row(const T* z, T* d, int m) {
    T top = -INFINITY;
    for (int j = 0; j < m; ++j) top = z[j] > top ? z[j] : top;
    T total = T(0);
    for (int j = 0; j < m; ++j) {
        d[j] = f_exp(z[j] - top);
        total += d[j];
    }
    for (int j = 0; j < m; ++j) d[j] /= total;
    return top + f_log(total);
}

// In place, one thread per row: Z[i] = softmax(Z[i] + b).
template <typename T>
__global__ void bias_softmax(T* Z, const T* b, long long n, int m) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    T* z = Z + i * m;
    for (int j = 0; j < m; ++j) z[j] += b[j];
    softmax_row(z, z, m);
}

// dZ = dH * act'(Z), written from the output H, and partial column sums of dZ towards
// db = sum_rows(dZ): block (32, 8) covers 32 columns; grid.y splits the rows in chunks of
// `chunk`; partial[blockIdx.y * m + j] receives the chunk's sum (the caller adds the
// chunks: a fixed order, so results do not depend on scheduling).
template <typename T>
__global__ void activation_backward_bias(const T* dH, const T* H, T* dZ, T* partial,
                                         long long n, int m, int code, int chunk) {
    __shared__ T sums[8][33];
    int j = blockIdx.x * 32 + threadIdx.x;
    long long start = (long long)blockIdx.y * chunk;
    long long stop = start + chunk < n ? start + chunk : n;
    T acc = T(0);
    if (j < m) {
        for (long long i = start + threadIdx.y; i < stop; i += 8) {
            long long k = i * m + j;
            T g = dH[k], h = H[k], v;
            if (code == FASTNN_RELU) v = g * (h > T(0) ? T(1) : T(0));  // NaN * 0 stays NaN
            else if (code == FASTNN_SIGMOID) v = g * h * (T(1) - h);
            else if (code == FASTNN_TANH) v = g * (T(1) - h * h);
            else v = g;
            dZ[k] = v;
            acc += v;
        }
    }
    sums[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && j < m) {
        T s = T(0);
        for (int r = 0; r < 8; ++r) s += sums[r][threadIdx.x];
        partial[blockIdx.y * (long long)m + j] = s;
    }
}

// One thread per row, from logits: row_loss[i] = logsumexp(Z[i]) - Z[i, labels[i]] and
// dZ[i] = (softmax(Z[i]) - onehot(labels[i])) / n.
template <typename T>
__global__ void softmax_cross_entropy_labels(const T* Z, const long long* labels, T* dZ,
                                             T* row_loss, long long n, int m) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T* z = Z + i * m;
    T* d = dZ + i * m;
    long long label = labels[i];
    row_loss[i] = softmax_row(z, d, m) - z[label];
    T inv_n = T(1) / T(n);
    for (int j = 0; j < m; ++j) d[j] *= inv_n;
    d[label] -= inv_n;
}

// As softmax_cross_entropy_labels with targets T_ (one-hot or probabilities, n x m).
template <typename T>
__global__ void softmax_cross_entropy_dense(const T* Z, const T* T_, T* dZ, T* row_loss,
                                            long long n, int m) {
    long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (i >= n) return;
    const T* z = Z + i * m;
    const T* t = T_ + i * m;
    T* d = dZ + i * m;
    T log_sum = softmax_row(z, d, m);
    T loss = T(0);
    T inv_n = T(1) / T(n);
    for (int j = 0; j < m; ++j) {
        loss -= t[j] * (z[j] - log_sum);
        d[j] = (d[j] - t[j]) * inv_n;
    }
    row_loss[i] = loss;
}

#ifdef FASTNN_INSTANTIATE
// For an offline compile check (nvcc -DFASTNN_INSTANTIATE); at run time NVRTC
// instantiates what the backend names.
#define FASTNN_DENSE(T)                                                                     \
    template __global__ void bias_activation<T>(T*, const T*, long long, int, int);        \
    template __global__ void bias_softmax<T>(T*, const T*, long long, int);                \
    template __global__ void activation_backward_bias<T>(const T*, const T*, T*, T*,       \
                                                         long long, int, int, int);        \
    template __global__ void softmax_cross_entropy_labels<T>(const T*, const long long*,   \
                                                             T*, T*, long long, int);      \
    template __global__ void softmax_cross_entropy_dense<T>(const T*, const T*, T*, T*,    \
                                                            long long, int);
FASTNN_DENSE(float)
FASTNN_DENSE(double)
#endif
