//! A lookup table: index i returns row i of the weight (learned word vectors).

use rand::Rng;

use super::Module;
use super::init::Init;
use crate::element::Float;
use crate::onnx::{self, ElemType};
use crate::tensor::Tensor;

/// `num_embeddings` vectors of size `dim`, initialised N(0, 1) as PyTorch.
/// The input holds indices (as whole numbers in a float tensor of any shape);
/// the output appends an axis of size `dim`.
pub struct Embedding<T: Float = f32> {
    /// `[num_embeddings, dim]`: row i is the vector of index i.
    pub weight: Tensor<T>,
}

impl<T: Float> Embedding<T> {
    /// A table of `num_embeddings` rows of size `dim`.
    pub fn new(num_embeddings: usize, dim: usize, rng: &mut impl Rng) -> Self {
        Self::with_init(num_embeddings, dim, Init::Normal(1.0), rng)
    }

    /// A table filled by `init` (`Init::Normal(0.02)` for a GPT's token embedding).
    pub fn with_init(num_embeddings: usize, dim: usize, init: Init, rng: &mut impl Rng) -> Self {
        Embedding {
            weight: init.tensor(&[num_embeddings, dim], rng).requires_grad(true),
        }
    }

    /// Looks up rows by index.
    pub fn lookup(&self, indices: &[usize], index_shape: &[usize]) -> Tensor<T> {
        let mut out_shape = index_shape.to_vec();
        out_shape.push(self.weight.shape()[1]);
        // each picked row's gradient flows back to that row (index_select's rule)
        self.weight.index_select(0, indices).reshape(&out_shape)
    }
}

impl<T: Float> Module<T> for Embedding<T> {
    fn forward(&self, input: &Tensor<T>) -> Tensor<T> {
        let rows = self.weight.shape()[0];
        let indices: Vec<usize> = input
            .data()
            .iter()
            .map(|&v| {
                let index = v.as_f64();
                assert!(
                    index >= 0.0 && index.fract() == 0.0 && (index as usize) < rows,
                    "Embedding({rows}): {index} is not an index below {rows}"
                );
                index as usize
            })
            .collect();
        self.lookup(&indices, input.shape())
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>, String> {
        Ok([input, &[self.weight.shape()[1]]].concat())
    }

    fn to_onnx(&self, onnx: &mut onnx::Builder, input: &onnx::Value) -> Result<String, String> {
        let weight = onnx.parameter("weight", &self.weight);
        // row i of the weight for each id i: Gather, which wants integer ids
        let ids = match input.elem {
            ElemType::Int64 => input.name.clone(),
            ElemType::Float => onnx.node(
                "Cast",
                &[&input.name],
                &[("to", onnx::Attribute::Int(ElemType::Int64.code()))],
            ),
        };
        Ok(onnx.node("Gather", &[&weight, &ids], &[]))
    }

    fn describe(&self) -> String {
        format!(
            "Embedding({}, {})",
            self.weight.shape()[0],
            self.weight.shape()[1]
        )
    }

    fn named_parameters(&self) -> Vec<(String, Tensor<T>)> {
        vec![("weight".into(), self.weight.clone())]
    }
}
