//! Shape arithmetic: element counts, row-major strides, broadcasting, axis handling.

/// Number of elements in a tensor of this shape (1 for a scalar, shape `[]`).
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major (C-order) strides: the last axis is contiguous.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

/// The shape two operands broadcast to under NumPy rules, or `None` if they cannot:
/// align trailing axes; each pair must be equal or contain a 1.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let ndim = a.len().max(b.len());
    let size_at = |shape: &[usize], axis: usize| {
        let missing = ndim - shape.len();
        if axis < missing {
            1
        } else {
            shape[axis - missing]
        }
    };
    (0..ndim)
        .map(|axis| match (size_at(a, axis), size_at(b, axis)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Strides for reading a tensor of shape `shape` as if it had shape `target`
/// (which it broadcasts to): broadcast axes get stride 0.
pub fn broadcast_strides(shape: &[usize], target: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let missing = target.len() - shape.len();
    (0..target.len())
        .map(|axis| {
            if axis < missing || shape[axis - missing] == 1 {
                0
            } else {
                own[axis - missing]
            }
        })
        .collect()
}

/// Turns a possibly negative axis (`-1` is the last) into an index, or panics with
/// the op's name, the axis and the tensor's rank.
pub fn normalize_axis(axis: isize, ndim: usize, op: &str) -> usize {
    let resolved = if axis < 0 { axis + ndim as isize } else { axis };
    if resolved < 0 || resolved >= ndim as isize {
        panic!("{op}: axis {axis} is out of range for a tensor with {ndim} dimensions");
    }
    resolved as usize
}

/// Views `shape` around `axis` as `[outer, len, inner]`: the layout every
/// along-one-axis kernel (reductions, softmax, select) works in.
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        numel(&shape[..axis]),
        shape[axis],
        numel(&shape[axis + 1..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_are_row_major() {
        assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
        assert_eq!(strides(&[]), Vec::<usize>::new());
    }

    #[test]
    fn broadcasting_follows_numpy() {
        assert_eq!(broadcast_shapes(&[4, 1, 3], &[5, 1]), Some(vec![4, 5, 3]));
        assert_eq!(broadcast_shapes(&[], &[2, 2]), Some(vec![2, 2]));
        assert_eq!(broadcast_shapes(&[2, 3], &[3, 2]), None);
        assert_eq!(broadcast_strides(&[5, 1], &[4, 5, 3]), vec![0, 1, 0]);
    }
}
