// Combining per-task (per-user) gradients when tasks conflict.
//
// Both methods take the tasks' flattened gradients as the rows of one matrix
//   grads: [T, P]  (T tasks, P parameters; float32 or float64)
// and return one update direction [P] of the same dtype, so a trainer runs one backward per user,
// stacks flatten_grads() of each, combines, and writes the result back with assign_flat_grad().
//
// Inner products are taken from the Gram matrix M = grads grads^T accumulated in float64 (column
// chunks, so the float64 temporary stays small), and the result is formed as one linear
// combination of the original rows: both methods only ever need <g_i, g_j>.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <ATen/Tensor.h>

#include "common/enum_names.h"

namespace tailor {

// How the users' gradients of a step are combined (recipe key train.grad_surgery): summed
// (none), or by PCGrad or MGDA below.
enum class GradSurgery { kNone, kPcgrad, kMgda };
const EnumNames<GradSurgery>& grad_surgery_names();  // none, pcgrad, mgda
const std::string& to_string(GradSurgery surgery);

// PCGrad (Yu et al. 2020, "Gradient Surgery for Multi-Task Learning", Algorithm 1): for each
// task i, visit the other tasks j != i in a random order (a Fisher–Yates shuffle drawn from
// `rng`, one per i, i = 0..T-1 in turn); whenever the current g_i conflicts with g_j
// (g_i.g_j < 0) remove the conflicting component,
//   g_i <- g_i - (g_i.g_j / |g_j|^2) g_j,
// always against the ORIGINAL g_j, as the reference implementation does. Tasks with |g_j| == 0
// are skipped. Returns sum_i g_i (reduction "sum") or its mean over T ("mean"), [P].
at::Tensor pcgrad(const at::Tensor& grads, std::mt19937_64& rng,
                  const std::string& reduction = "sum");

// MGDA-UB's min-norm point (Désidéri 2012; Sener & Koltun 2018, "Multi-Task Learning as
// Multi-Objective Optimization", Algorithm 2): alpha on the simplex minimising
// |sum_i alpha_i g_i|^2.
//   T == 1: {1}.
//   T == 2: c = clip((|g2|^2 - g1.g2) / |g1 - g2|^2, 0, 1), alpha = {c, 1 - c}
//           ({0.5, 0.5} when g1 == g2).
//   T > 2:  Frank–Wolfe on M from the uniform point: t = argmin_i (M alpha)_i, then the exact
//           line search between alpha and e_t (the two-task formula on the Gram entries); stop
//           when |delta alpha|_1 < tol or after max_iter iterations.
//           With away steps (Wolfe 1970; Lacoste-Julien & Jaggi 2015, Algorithm 1): when the
//           active task s = argmax_{alpha_s > 0} (M alpha)_s offers the larger gap, move away
//           from e_s instead (same two-task formula, c clipped to [1, 1/(1 - alpha_s)], the upper
//           end dropping s exactly). Plain Frank–Wolfe (Sener & Koltun's MinNormSolver) zig-zags
//           when the min-norm point lies on a face of the simplex (some alpha_i = 0): objective
//           gaps of 2e-3 after 250 iterations and 1e-5 after 1e5 on random 3-task cases, where
//           the away steps reach 1e-9 in under 150 iterations.
std::vector<double> mgda_weights(const at::Tensor& grads, int max_iter = 250, double tol = 1e-5);

// T * sum_i alpha_i g_i, [P]: scaled by T so its magnitude matches the plain sum of the task
// gradients (the learning rate keeps its meaning when switching grad_surgery on).
at::Tensor mgda_combine(const at::Tensor& grads, const std::vector<double>& alpha);

// The concatenation of the params' .grad()s in order, each flattened, as float32 [P] on the first
// parameter's device; a parameter without a grad contributes zeros.
at::Tensor flatten_grads(const std::vector<at::Tensor>& params);

// The inverse: writes consecutive slices of `flat` ([P], P = total numel of params) into each
// parameter's .grad() (allocated when undefined), converted to the parameter's dtype and device.
void assign_flat_grad(const std::vector<at::Tensor>& params, const at::Tensor& flat);

}  // namespace tailor
