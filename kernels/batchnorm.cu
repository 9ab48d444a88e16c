// fastnn CUDA kernels for batch normalization, compiled at run time by cupy.RawModule.
//
// Templated on the element type T (float or double). X is row-major (n x m): n rows
// (samples), m features. Per-feature sums use one thread per feature, stepping down the
// rows, so a warp reads 32 neighbouring features of one row at a time (coalesced), and
// accumulate in double. Elementwise passes are grid-stride loops. No fast-math.

// mean, biased var and inv_std = 1 / sqrt(var + eps) of each feature
template <typename T>
__global__ void batchnorm_stats(const T* X, long long n, int m, T eps, T* mean, T* var,
                                T* inv_std) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < m; j += blockDim.x * gridDim.x) {
        double total = 0.0;
        for (long long i = 0; i < n; ++i) total += (double)X[i * m + j];
        double mu = total / (double)n;
        double squares = 0.0;
        for (long long i = 0; i < n; ++i) {
            double d = (double)X[i * m + j] - mu;
            squares += d * d;
        }
        mean[j] = (T)mu;
        var[j] = (T)(squares / (double)n);
        inv_std[j] = (T)(1.0 / sqrt(squares / (double)n + (double)eps));
    }
}

// X_hat = (X - mean) inv_std, H = gamma X_hat + beta
template <typename T>
__global__ void batchnorm_apply(const T* X, const T* mean, const T* inv_std, const T* gamma,
                                const T* beta, T* X_hat, T* H, long long n, int m) {
    long long total = n * m;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int j = (int)(k % m);
        T x_hat = (X[k] - mean[j]) * inv_std[j];
        X_hat[k] = x_hat;
        H[k] = gamma[j] * x_hat + beta[j];
    }
}

// H = gamma (X - running_mean) / sqrt(running_var + eps) + beta
template <typename T>
__global__ void batchnorm_eval(const T* X, const T* gamma, const T* beta,
                               const T* running_mean, const T* running_var, T eps, T* H,
                               long long n, int m) {
    long long total = n * m;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int j = (int)(k % m);
        H[k] = (X[k] - running_mean[j]) * (gamma[j] / sqrt(running_var[j] + eps)) + beta[j];
    }
}

// dbeta = sum dH, dgamma = sum dH X_hat over the rows
template <typename T>
__global__ void batchnorm_backward_sums(const T* dH, const T* X_hat, long long n, int m,
                                        T* dgamma, T* dbeta) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < m; j += blockDim.x * gridDim.x) {
        double sum_d = 0.0, sum_dx = 0.0;
        for (long long i = 0; i < n; ++i) {
            double d = (double)dH[i * m + j];
            sum_d += d;
            sum_dx += d * (double)X_hat[i * m + j];
        }
        dbeta[j] = (T)sum_d;
        dgamma[j] = (T)sum_dx;
    }
}

// dX = gamma inv_std / n (n dH - dbeta - X_hat dgamma)
template <typename T>
__global__ void batchnorm_backward_dx(const T* dH, const T* X_hat, const T* inv_std,
                                      const T* gamma, const T* dgamma, const T* dbeta, T* dX,
                                      long long n, int m) {
    long long total = n * m;
    for (long long k = blockIdx.x * (long long)blockDim.x + threadIdx.x; k < total;
         k += (long long)blockDim.x * gridDim.x) {
        int j = (int)(k % m);
        dX[k] = gamma[j] * inv_std[j] / T(n) * (T(n) * dH[k] - dbeta[j] - X_hat[k] * dgamma[j]);
    }
}

#ifdef FASTNN_INSTANTIATE
// For an offline compile check (nvcc -DFASTNN_INSTANTIATE); at run time NVRTC
// instantiates what the backend names.
#define FASTNN_BATCHNORM(T)                                                                  \
    template __global__ void batchnorm_stats<T>(const T*, long long, int, T, T*, T*, T*);    \
    template __global__ void batchnorm_apply<T>(const T*, const T*, const T*, const T*,      \
                                                const T*, T*, T*, long long, int);           \
    template __global__ void batchnorm_eval<T>(const T*, const T*, const T*, const T*,       \
                                               const T*, T, T*, long long, int);             \
    template __global__ void batchnorm_backward_sums<T>(const T*, const T*, long long, int,  \
                                                        T*, T*);                             \
    template __global__ void batchnorm_backward_dx<T>(const T*, const T*, const T*,          \
                                                      const T*, const T*, const T*, T*,      \
                                                      long long, int);
FASTNN_BATCHNORM(float)
FASTNN_BATCHNORM(double)
#endif
