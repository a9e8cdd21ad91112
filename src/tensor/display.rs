//! Printing like PyTorch: `tensor([[1.0000, 2.0000], …], requires_grad=True)`.

use std::fmt;

use super::Tensor;
use crate::element::Float;

/// Above this many elements only the first and last `EDGE_ITEMS` of each axis are shown.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

impl<T: Float> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.data();
        let summarize = data.len() > SUMMARY_THRESHOLD;
        let precision = f.precision().unwrap_or(4);
        // Every number gets the same width so columns line up.
        let width = data
            .iter()
            .map(|v| format!("{:.*}", precision, v).len())
            .max()
            .unwrap_or(1);
        let mut out = String::from("tensor(");
        let printer = Printer {
            data: &data,
            shape: self.shape(),
            precision,
            width,
            summarize,
        };
        printer.write(&mut out, 0, 0, "tensor(".len());
        out.push(')');
        if self.tracks_grad() {
            out.insert_str(out.len() - 1, ", requires_grad=True");
        }
        f.write_str(&out)
    }
}

impl<T: Float> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        write!(f, " shape={:?} dtype={}", self.shape(), T::DTYPE)?;
        if let Some(op) = self.op_name() {
            write!(f, " grad_fn={op}")?;
        }
        Ok(())
    }
}

struct Printer<'a, T> {
    data: &'a [T],
    shape: &'a [usize],
    precision: usize,
    width: usize,
    summarize: bool,
}

impl<T: Float> Printer<'_, T> {
    /// Writes the sub-array at `axis` starting at flat `offset`; `indent` is the
    /// column where this bracket level starts.
    fn write(&self, out: &mut String, axis: usize, offset: usize, indent: usize) {
        if axis == self.shape.len() {
            out.push_str(&format!(
                "{:>w$.p$}",
                self.data[offset],
                w = self.width,
                p = self.precision
            ));
            return;
        }
        let len = self.shape[axis];
        let stride: usize = self.shape[axis + 1..].iter().product();
        let separator = if axis + 1 == self.shape.len() {
            ", ".to_string()
        } else {
            let blank_lines = "\n".repeat(self.shape.len() - axis - 1);
            format!(",{blank_lines}{}", " ".repeat(indent + 1))
        };
        out.push('[');
        let shown: Vec<Option<usize>> = if self.summarize && len > 2 * EDGE_ITEMS {
            (0..EDGE_ITEMS)
                .map(Some)
                .chain(std::iter::once(None))
                .chain((len - EDGE_ITEMS..len).map(Some))
                .collect()
        } else {
            (0..len).map(Some).collect()
        };
        for (position, index) in shown.iter().enumerate() {
            if position > 0 {
                out.push_str(&separator);
            }
            match index {
                Some(i) => self.write(out, axis + 1, offset + i * stride, indent + 1),
                None => out.push_str("..."),
            }
        }
        out.push(']');
    }
}

#[cfg(test)]
mod tests {
    use crate::Tensor;

    #[test]
    fn prints_like_pytorch() {
        let t = Tensor::<f32>::from_vec(vec![1.0, -2.5, 3.0, 4.0], &[2, 2]);
        assert_eq!(
            t.to_string(),
            "tensor([[ 1.0000, -2.5000],\n        [ 3.0000,  4.0000]])"
        );
        assert_eq!(Tensor::<f64>::scalar(0.5).to_string(), "tensor(0.5000)");
        let p = Tensor::<f32>::from_vec(vec![1.0, 2.0], &[2]).requires_grad(true);
        assert_eq!(
            p.to_string(),
            "tensor([1.0000, 2.0000], requires_grad=True)"
        );
    }

    #[test]
    fn large_tensors_are_summarized() {
        let t = Tensor::<f32>::arange(0.0, 2000.0, 1.0);
        let text = t.to_string();
        assert!(text.contains("..."), "{text}");
        assert!(text.len() < 200, "{text}");
    }
}
