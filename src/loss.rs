//! Loss functions: how far the prediction is from the target, as one number whose
//! gradient starts backpropagation. Definitions and reductions match PyTorch's.

use crate::element::Float;
use crate::tensor::Tensor;

pub use crate::ops::softmax::Reduction;

/// The rules of the losses recorded as one op (the others are compositions of ops
/// with rules of their own), as `nabla explain` shows them.
pub(crate) const RULES: &[crate::ops::Rule] = &[crate::ops::Rule {
    op: "bce_with_logits",
    forward: "ℓ = −y·log σ(x) − (1 − y)·log(1 − σ(x))",
    backward: "dℓ/dx = G·(σ(x) − y)",
}];

fn reduce<T: Float>(losses: Tensor<T>, reduction: Reduction) -> Tensor<T> {
    match reduction {
        Reduction::Mean => losses.mean(),
        Reduction::Sum => losses.sum(),
    }
}

fn same_shape<T: Float>(name: &str, prediction: &Tensor<T>, target: &Tensor<T>) {
    assert_eq!(
        prediction.shape(),
        target.shape(),
        "{name}: prediction of shape {:?} and target of shape {:?} differ",
        prediction.shape(),
        target.shape()
    );
}

/// Mean squared error: `(prediction − target)²`.
pub fn mse_loss<T: Float>(
    prediction: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Tensor<T> {
    same_shape("mse_loss", prediction, target);
    reduce((prediction - target).square(), reduction)
}

/// Mean absolute error: `|prediction − target|`.
pub fn l1_loss<T: Float>(
    prediction: &Tensor<T>,
    target: &Tensor<T>,
    reduction: Reduction,
) -> Tensor<T> {
    same_shape("l1_loss", prediction, target);
    reduce((prediction - target).abs(), reduction)
}

/// Huber loss: `½d²` where `|d| < δ`, else `δ(|d| − ½δ)`, with `d = prediction − target`.
pub fn huber_loss<T: Float>(
    prediction: &Tensor<T>,
    target: &Tensor<T>,
    delta: f64,
    reduction: Reduction,
) -> Tensor<T> {
    same_shape("huber_loss", prediction, target);
    let delta_t = T::cast(delta);
    let abs = (prediction - target).abs();
    // ½·min(|d|, δ)² + δ·(|d| − min(|d|, δ)) is both branches in one expression
    let small = abs.clamp(T::zero(), delta_t);
    let losses = small.square() * T::cast(0.5) + (&abs - &small) * delta_t;
    reduce(losses, reduction)
}

/// Options of [`cross_entropy`], as PyTorch's `nn.CrossEntropyLoss`.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropyOptions {
    /// Mean (weighted by class weight) or sum over the batch.
    pub reduction: Reduction,
    /// ε: the target becomes (1 − ε)·one-hot + ε/classes.
    pub label_smoothing: f64,
    /// A weight per class, scaling each sample's loss by its target's weight.
    pub class_weights: Option<Vec<f64>>,
}

/// Cross-entropy of `logits` (`[batch, classes]`) against class indices:
/// `−log softmax(logits)[i, yᵢ]`, computed with log-sum-exp so it cannot overflow.
///
/// ```
/// use nabla::{Tensor, loss::{cross_entropy, CrossEntropyOptions}};
/// // uniform logits over 4 classes: loss = ln 4
/// let loss = cross_entropy(&Tensor::<f64>::zeros(&[2, 4]), &[1, 3], &CrossEntropyOptions::default());
/// assert!((loss.item() - 4f64.ln()).abs() < 1e-12);
/// ```
pub fn cross_entropy<T: Float>(
    logits: &Tensor<T>,
    targets: &[usize],
    options: &CrossEntropyOptions,
) -> Tensor<T> {
    if options.label_smoothing == 0.0 && options.class_weights.is_none() {
        return logits.softmax_cross_entropy(targets, options.reduction);
    }
    let log_probs = logits.log_softmax(-1);
    let nll = nll_loss(
        &log_probs,
        targets,
        options.class_weights.as_deref(),
        options.reduction,
    );
    let epsilon = options.label_smoothing;
    if epsilon == 0.0 {
        return nll;
    }
    assert!(
        (0.0..=1.0).contains(&epsilon),
        "cross_entropy: label_smoothing {epsilon} is not in [0, 1]"
    );
    // The smoothing term: −Σ_c w_c·log p_c per sample, reduced like the NLL term.
    let classes = logits.dim(-1);
    let weighted = match &options.class_weights {
        Some(w) => &log_probs * &class_weight_tensor::<T>(w, classes),
        None => log_probs.clone(),
    };
    let per_sample = -weighted.sum_axes(&[-1], false);
    let smooth = match (options.reduction, &options.class_weights) {
        (Reduction::Sum, _) => per_sample.sum(),
        (Reduction::Mean, None) => per_sample.mean(),
        (Reduction::Mean, Some(w)) => {
            per_sample.sum() / T::cast(targets.iter().map(|&t| w[t]).sum::<f64>())
        }
    };
    nll * T::cast(1.0 - epsilon) + smooth * T::cast(epsilon / classes as f64)
}

fn class_weight_tensor<T: Float>(weights: &[f64], classes: usize) -> Tensor<T> {
    assert_eq!(
        weights.len(),
        classes,
        "class weights: {} weights for {classes} classes",
        weights.len()
    );
    Tensor::from_vec(weights.iter().map(|&w| T::cast(w)).collect(), &[classes])
}

/// Negative log-likelihood of `log_probs` (`[batch, classes]`) at the target
/// classes; with class weights, the mean divides by the sum of the targets' weights.
pub fn nll_loss<T: Float>(
    log_probs: &Tensor<T>,
    targets: &[usize],
    class_weights: Option<&[f64]>,
    reduction: Reduction,
) -> Tensor<T> {
    assert!(
        log_probs.ndim() == 2 && log_probs.shape()[0] == targets.len(),
        "nll_loss: expected log-probabilities [batch, classes] for {} targets, got shape {:?}",
        targets.len(),
        log_probs.shape()
    );
    let classes = log_probs.shape()[1];
    if let Some((i, &bad)) = targets.iter().enumerate().find(|&(_, &t)| t >= classes) {
        panic!("nll_loss: target {bad} at position {i} is not below the class count {classes}");
    }
    let picked = -log_probs.gather(1, targets, &[targets.len(), 1]);
    match class_weights {
        None => reduce(picked, reduction),
        Some(weights) => {
            assert_eq!(
                weights.len(),
                classes,
                "nll_loss: {} class weights for {classes} classes",
                weights.len()
            );
            let per_sample: Vec<T> = targets.iter().map(|&t| T::cast(weights[t])).collect();
            let total_weight: f64 = targets.iter().map(|&t| weights[t]).sum();
            let weighted = picked * Tensor::from_vec(per_sample, &[targets.len(), 1]);
            match reduction {
                Reduction::Sum => weighted.sum(),
                Reduction::Mean => weighted.sum() / T::cast(total_weight),
            }
        }
    }
}

/// Binary cross-entropy from logits, stable for any logit:
/// `max(x, 0) − x·y + log(1 + e^−|x|)`, which equals `−y·log σ(x) − (1 − y)·log(1 − σ(x))`.
pub fn binary_cross_entropy_with_logits<T: Float>(
    logits: &Tensor<T>,
    targets: &Tensor<T>,
    reduction: Reduction,
) -> Tensor<T> {
    same_shape("binary_cross_entropy_with_logits", logits, targets);
    let values = crate::cpu::zip(&logits.data(), &targets.data(), |x, y| {
        x.max(T::zero()) - x * y + (-x.abs()).exp().ln_1p()
    });
    // dℓ/dx = σ(x) − y (smooth everywhere, also at x = 0);  dℓ/dy = −x
    let losses = Tensor::from_op(
        values,
        logits.shape(),
        "bce_with_logits",
        &[logits, targets],
        |ctx| {
            let (x, y, g) = (ctx.input(0), ctx.input(1), ctx.grad_output);
            let grad_x = crate::cpu::zip3(&g.data(), &x.data(), &y.data(), |g, x, y| {
                g * (crate::ops::activation::stable_sigmoid(x) - y)
            });
            vec![
                Some(Tensor::from_vec(grad_x, x.shape())),
                ctx.needs_grad(1).then(|| -(g * x)),
            ]
        },
    );
    reduce(losses, reduction)
}
