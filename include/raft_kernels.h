/* raft_kernels.h: the C ABI of Raft.Engine's loss kernels (libraft_kernels.so, NativeAOT; src/Raft.Kernels.Native).
 *
 * Every tensor is a row-major, C-contiguous array; sizes are element counts; rows * vocab must not exceed 2^31 - 1
 * (call per chunk of rows with a shared `normalizer` for larger batches). Every function validates all of its
 * arguments before writing anything and returns a raft_status; on failure raft_last_error() returns a message naming
 * the argument and value. Functions are thread-safe; each call runs threaded over rows (raft_set_num_threads).
 * Mathematics: docs/ and the XML docs of Raft.Kernels.ILossKernels (the engine's own training calls the same code).
 */
#ifndef RAFT_KERNELS_H
#define RAFT_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RAFT_ABI_VERSION 1

typedef enum raft_status {
    RAFT_OK = 0,
    RAFT_INVALID_ARGUMENT = 1, /* a size, pointer or value was rejected; nothing was written */
    RAFT_NON_FINITE_LOGIT = 2, /* a NaN/Inf logit; the message names tensor and row (in-place gradients may be partial) */
    RAFT_OUT_OF_MEMORY = 3,
    RAFT_INTERNAL = 4          /* a bug: the message carries the exception */
} raft_status;

/* The divergence of raft_distill (every loss is multiplied by temperature^2). */
typedef enum raft_loss_kind {
    RAFT_FORWARD_KL = 0, /* KL(p_K || softmax(s/T)) over the vocabulary: RAFT's default */
    RAFT_REVERSE_KL = 1, /* KL(q_K || p_K), q_K = softmax(s/T) renormalised over the teacher's K indices */
    RAFT_JSD = 2         /* generalized JSD(beta) of GKD; beta = 0 / 1 resolve to forward / reverse KL */
} raft_loss_kind;

/* The result of a loss call: loss = loss_sum / normalizer (0 when normalizer is 0). */
typedef struct raft_loss_result {
    double loss;        /* the weighted mean loss; the gradient written is the gradient of this value */
    double loss_sum;    /* sum_r w_r * L_r */
    double weight_sum;  /* sum_r w_r (cross-entropy: the number of rows not ignored) */
    double normalizer;  /* the divisor used: weight_sum unless the caller gave one > 0 */
} raft_loss_result;

/* RAFT_ABI_VERSION of the loaded library. */
int32_t raft_abi_version(void);

/* The calling thread's message for its last failed call ("" after a success); owned by the library, valid until
 * the next call on the same thread. */
const char* raft_last_error(void);

/* Threads over rows for later calls, process-wide; 0 = all cores. */
int32_t raft_set_num_threads(int32_t num_threads);

/* The kernels in use, e.g. "cpu-vector256" (a static string). */
const char* raft_kernels_name(void);

/* Top-K temperature softmax of teacher rows: teacher_logits [rows, vocab] -> indices [rows, k] (descending logit,
 * ties to the lower index) and probs [rows, k] = softmax(logits[idx] / temperature). 1 <= k <= vocab. */
int32_t raft_topk_softmax(const float* teacher_logits, int32_t rows, int32_t vocab, int32_t k, float temperature,
                          int32_t* indices, float* probs);

/* Fused distillation loss and gradient of student_logits [rows, vocab] against the teacher's top-K
 * (teacher_indices, teacher_probs [rows, top_k]) at the temperature. row_weights [rows] may be NULL (all 1): rows of
 * weight 0 are not read. gradient [rows, vocab] may be NULL (loss only) or equal to student_logits (in place).
 * normalizer: 0 divides by the weight sum; > 0 divides by it (for chunked batches). kind: raft_loss_kind. */
int32_t raft_distill(const float* student_logits, int32_t rows, int32_t vocab,
                     const int32_t* teacher_indices, const float* teacher_probs, int32_t top_k, float temperature,
                     int32_t kind, float beta, const float* row_weights, float* gradient, float normalizer,
                     raft_loss_result* result);

/* Cross-entropy with label smoothing eps (PyTorch's convention) of logits [rows, vocab] against targets [rows];
 * rows whose target is ignore_index are not read and get a zero gradient. gradient may be NULL or equal to logits.
 * normalizer: 0 divides by the number of rows not ignored. */
int32_t raft_cross_entropy(const float* logits, int32_t rows, int32_t vocab, const int32_t* targets, float* gradient,
                           int32_t ignore_index, float label_smoothing, float normalizer, raft_loss_result* result);

/* One step of the EMA loss balancer over caller-held state: ema [terms] and *steps are updated in place (start
 * from zeros), weights [terms] receives the weights to apply to this step's losses [terms].
 * m_k <- d*m_k + (1-d)*|L_k|; w_k = (r_k / sum r) * (sum_j m^_j) / max(m^_k, 1e-12), m^ = m / (1 - d^t).
 * decay d in [0, 1); target_ratio r_k > 0. On error the state is unchanged. */
int32_t raft_ema_balancer_step(int32_t terms, double decay, const double* target_ratio, double* ema, int64_t* steps,
                               const double* losses, double* weights);

#ifdef __cplusplus
}
#endif

#endif /* RAFT_KERNELS_H */
