/*
 * A stand-in libcuda.so.1 for checking the driver binding's marshalling on a machine without a GPU:
 * host memory plays device memory, and launches of the hand-written test kernel `add_one`
 * (float* x, int x_length, int n) and of the generated Elementwise.Axpy and Elementwise.Scale are
 * executed on the CPU from the parameter array exactly as cuLaunchKernel receives it. Every call checks the context is current and the handles are its own.
 * It is a development check, not part of the test suite; see run-mock.sh.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int CUresult;
#define OK 0
#define INVALID_VALUE 1
#define INVALID_CONTEXT 201
#define INVALID_IMAGE 200
#define INVALID_HANDLE 400
#define NOT_FOUND 500

#define DEVICE_HANDLE 100 /* deliberately not the ordinal */
static char context_token;
static void *const CONTEXT = &context_token;
static __thread void *current;
static int retained;

typedef struct { char *image; size_t size; } module_t;
typedef struct { module_t *module; char name[128]; int max_dynamic_shared; } function_t;
typedef struct { double ms; int recorded; } event_t;
static char stream_token;

static int bound(void) { return current == CONTEXT && retained > 0; }

CUresult cuInit(unsigned flags) { return flags == 0 ? OK : INVALID_VALUE; }
CUresult cuDriverGetVersion(int *v) { *v = 12040; return OK; }
CUresult cuGetErrorName(CUresult e, const char **s) {
    switch (e) {
    case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; return OK;
    case INVALID_CONTEXT: *s = "CUDA_ERROR_INVALID_CONTEXT"; return OK;
    case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; return OK;
    case INVALID_IMAGE: *s = "CUDA_ERROR_INVALID_IMAGE"; return OK;
    default: *s = "CUDA_ERROR_UNKNOWN"; return OK;
    }
}
CUresult cuGetErrorString(CUresult e, const char **s) { *s = e == INVALID_CONTEXT ? "invalid device context" : "mock driver error"; return OK; }
CUresult cuDeviceGetCount(int *n) { *n = 1; return OK; }
CUresult cuDeviceGet(int *d, int ordinal) { if (ordinal != 0) return INVALID_VALUE; *d = DEVICE_HANDLE; return OK; }
CUresult cuDeviceGetName(char *name, int len, int d) {
    if (d != DEVICE_HANDLE || len < 16) return INVALID_VALUE;
    strcpy(name, "Mock H100 80GB"); return OK;
}
CUresult cuDeviceTotalMem_v2(size_t *bytes, int d) { if (d != DEVICE_HANDLE) return INVALID_VALUE; *bytes = (size_t)80 << 30; return OK; }
CUresult cuDeviceGetAttribute(int *v, int attribute, int d) {
    if (d != DEVICE_HANDLE) return INVALID_VALUE;
    switch (attribute) {
    case 1: *v = 1024; return OK;
    case 8: *v = 49152; return OK;
    case 13: *v = 1980000; return OK;
    case 16: *v = 132; return OK;
    case 36: *v = 2619000; return OK;
    case 37: *v = 5120; return OK;
    case 75: *v = 9; return OK;
    case 76: *v = 0; return OK;
    case 97: *v = 232448; return OK;
    default: return INVALID_VALUE;
    }
}
CUresult cuDevicePrimaryCtxRetain(void **ctx, int d) { if (d != DEVICE_HANDLE) return INVALID_VALUE; retained++; *ctx = CONTEXT; return OK; }
CUresult cuDevicePrimaryCtxRelease_v2(int d) { if (d != DEVICE_HANDLE || retained == 0) return INVALID_VALUE; retained--; return OK; }
CUresult cuCtxSetCurrent(void *ctx) { if (ctx != CONTEXT) return INVALID_CONTEXT; current = ctx; return OK; }

CUresult cuMemAlloc_v2(uint64_t *p, size_t bytes) { if (!bound()) return INVALID_CONTEXT; if (bytes == 0) return INVALID_VALUE; *p = (uint64_t)(uintptr_t)malloc(bytes); return OK; }
CUresult cuMemFree_v2(uint64_t p) { if (!bound()) return INVALID_CONTEXT; free((void *)(uintptr_t)p); return OK; }
CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total) { if (!bound()) return INVALID_CONTEXT; *free_bytes = (size_t)79 << 30; *total = (size_t)80 << 30; return OK; }
static int stream_ok(void *s) { return s == &stream_token; }
CUresult cuMemcpyHtoDAsync_v2(uint64_t dst, const void *src, size_t n, void *s) { if (!bound()) return INVALID_CONTEXT; if (!stream_ok(s)) return INVALID_HANDLE; memcpy((void *)(uintptr_t)dst, src, n); return OK; }
CUresult cuMemcpyDtoHAsync_v2(void *dst, uint64_t src, size_t n, void *s) { if (!bound()) return INVALID_CONTEXT; if (!stream_ok(s)) return INVALID_HANDLE; memcpy(dst, (void *)(uintptr_t)src, n); return OK; }
CUresult cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void *s) { if (!bound()) return INVALID_CONTEXT; if (!stream_ok(s)) return INVALID_HANDLE; memmove((void *)(uintptr_t)dst, (void *)(uintptr_t)src, n); return OK; }
CUresult cuMemsetD8Async(uint64_t dst, unsigned char value, size_t n, void *s) { if (!bound()) return INVALID_CONTEXT; if (!stream_ok(s)) return INVALID_HANDLE; memset((void *)(uintptr_t)dst, value, n); return OK; }

CUresult cuModuleLoadDataEx(module_t **m, const void *image, unsigned n, int *options, void **values) {
    if (!bound()) return INVALID_CONTEXT;
    if (n != 2 || options[0] != 5 || options[1] != 6 || (uintptr_t)values[1] != 16384 || values[0] == NULL) return INVALID_VALUE;
    const unsigned char *bytes = image;
    size_t size;
    if (bytes[0] == 0x7f && bytes[1] == 'E' && bytes[2] == 'L' && bytes[3] == 'F') {
        /* ELF: size from the section header table (e_shoff + e_shnum * e_shentsize). */
        uint64_t shoff; uint16_t shentsize, shnum;
        memcpy(&shoff, bytes + 0x28, 8); memcpy(&shentsize, bytes + 0x3A, 2); memcpy(&shnum, bytes + 0x3C, 2);
        size = shoff + (size_t)shentsize * shnum;
    } else if (strstr((const char *)image, ".entry") != NULL) {
        size = strlen((const char *)image) + 1;
    } else {
        strcpy((char *)values[0], "mock: neither a CUBIN nor PTX");
        return INVALID_IMAGE;
    }
    module_t *mod = malloc(sizeof *mod);
    mod->image = malloc(size); memcpy(mod->image, image, size); mod->size = size;
    *m = mod;
    return OK;
}
CUresult cuModuleUnload(module_t *m) { if (!bound()) return INVALID_CONTEXT; free(m->image); free(m); return OK; }
CUresult cuModuleGetFunction(function_t **f, module_t *m, const char *name) {
    if (!bound()) return INVALID_CONTEXT;
    size_t len = strlen(name);
    for (size_t i = 0; i + len <= m->size; i++) {
        if (memcmp(m->image + i, name, len) == 0) {
            function_t *fn = calloc(1, sizeof *fn);
            fn->module = m; strncpy(fn->name, name, sizeof fn->name - 1); fn->max_dynamic_shared = 49152;
            *f = fn;
            return OK;
        }
    }
    return NOT_FOUND;
}
CUresult cuFuncSetAttribute(function_t *f, int attribute, int value) {
    if (!bound()) return INVALID_CONTEXT;
    if (attribute != 8 || value > 232448) return INVALID_VALUE;
    f->max_dynamic_shared = value; return OK;
}
CUresult cuFuncGetAttribute(int *v, int attribute, function_t *f) {
    if (!bound()) return INVALID_CONTEXT;
    switch (attribute) { case 0: *v = 1024; return OK; case 1: *v = 0; return OK; case 4: *v = 16; return OK; default: return INVALID_VALUE; }
}
CUresult cuLaunchKernel(function_t *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz,
                        unsigned shared, void *s, void **params, void **extra) {
    if (!bound()) return INVALID_CONTEXT;
    if (!stream_ok(s) || extra != NULL) return INVALID_HANDLE;
    if ((unsigned long)bx * by * bz > 1024 || (int)shared > f->max_dynamic_shared) return INVALID_VALUE;
    unsigned long threads = (unsigned long)gx * bx; /* the emulated kernels are 1-d */
    /* Entry points carry the namespace: ioct_IlgpuOct_Kernels_Operators_Elementwise_Axpy. */
    int is_axpy = strcmp(f->name, "ioct_IlgpuOct_Kernels_Operators_Elementwise_Axpy") == 0;
    if (is_axpy || strcmp(f->name, "ioct_IlgpuOct_Kernels_Operators_Elementwise_Scale") == 0) {
        /* Generated (float a, float* x, int x_length, float* y, int y_length), grid-stride loop over y. */
        float a = *(float *)params[0];
        float *x = *(float **)params[1];
        int x_length = *(int *)params[2];
        float *y = *(float **)params[3];
        int y_length = *(int *)params[4];
        int axpy = is_axpy;
        for (unsigned long t = 0; t < threads; t++)
            for (long i = (long)t; i < y_length; i += (long)threads) {
                if (i >= x_length) return 700; /* CUDA_ERROR_ILLEGAL_ADDRESS */
                y[i] = axpy ? y[i] + a * x[i] : a * x[i];
            }
        return OK;
    }
    if (strcmp(f->name, "add_one") != 0) return NOT_FOUND; /* other kernels cannot run here */
    float *x = *(float **)params[0];
    int x_length = *(int *)params[1];
    int n = *(int *)params[2];
    for (unsigned long block = 0; block < (unsigned long)gx * gy * gz; block++)
        for (unsigned long t = 0; t < (unsigned long)bx * by * bz; t++) {
            long i = (long)(block % gx) * bx + (long)(t % bx);
            if (i < n && i < x_length) x[i] = x[i] + 1.0f;
        }
    return OK;
}
CUresult cuStreamCreate(void **s, unsigned flags) { if (!bound()) return INVALID_CONTEXT; if (flags != 0) return INVALID_VALUE; *s = &stream_token; return OK; }
CUresult cuStreamSynchronize(void *s) { if (!bound()) return INVALID_CONTEXT; return stream_ok(s) ? OK : INVALID_HANDLE; }
CUresult cuStreamDestroy_v2(void *s) { if (!bound()) return INVALID_CONTEXT; return stream_ok(s) ? OK : INVALID_HANDLE; }
static double now_ms(void) { struct timespec ts; clock_gettime(CLOCK_MONOTONIC, &ts); return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6; }
CUresult cuEventCreate(event_t **e, unsigned flags) { if (!bound()) return INVALID_CONTEXT; *e = calloc(1, sizeof **e); return flags == 0 ? OK : INVALID_VALUE; }
CUresult cuEventRecord(event_t *e, void *s) { if (!bound()) return INVALID_CONTEXT; if (!stream_ok(s)) return INVALID_HANDLE; e->ms = now_ms(); e->recorded = 1; return OK; }
CUresult cuEventSynchronize(event_t *e) { if (!bound()) return INVALID_CONTEXT; return e->recorded ? OK : INVALID_HANDLE; }
CUresult cuEventElapsedTime(float *ms, event_t *a, event_t *b) { if (!bound()) return INVALID_CONTEXT; if (!a->recorded || !b->recorded) return INVALID_HANDLE; *ms = (float)(b->ms - a->ms); return OK; }
CUresult cuEventDestroy_v2(event_t *e) { if (!bound()) return INVALID_CONTEXT; free(e); return OK; }
