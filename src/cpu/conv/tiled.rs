//! Stride-1 convolution computed in place on the padded planes, tiled for registers.
//!
//! The im2col + GEMM path copies every receptive field into columns and then the
//! GEMM packs those columns once more; at 16–64 channels (ResNet's CIFAR stages)
//! the copies cost half as much as the multiply-adds. Here nothing is copied but
//! the padding: in the wide layout of [`Padded`] a kernel tap is a shift of the
//! whole plane, so the columns' row `k = (c, i, j)` is the padded plane `c` read
//! from `c · plane_len + shift(i, j)`, and the product runs straight off the planes.
//!
//! One tile is [`TILE`] × [`TILE`] sums kept in registers across the whole
//! reduction (sixteen AVX-512 vectors of sixteen `f32`). Two tile kernels cover all
//! three passes:
//! - `channel_tile`: 16 output channels × 16 neighbouring outputs,
//!   `Σ_k w[k, o] · planes[offset(k) + p]` — the forward pass, and the input
//!   gradient, which is the same convolution run on the padded output gradient with
//!   the kernel flipped and its channel axes swapped;
//! - `product_tile`: 4 output channels × 6 columns of the weight gradient,
//!   `Σ_p g[o, p] · planes[offset(k) + p]` over every output of a chunk of images,
//!   sixteen outputs at a time in sixteen lanes.
//!
//! Every sum is a chain of fused multiply-adds (`mul_add`: one rounding each, in
//! hardware or software alike), in a fixed order that no thread count changes. The
//! tiles need AVX-512's 32 vector registers: `ConvPlan` takes this path only where
//! the CPU has them ([`crate::cpu::has_avx512_fma`]); elsewhere the kernels still run
//! (tests), unvectorised.

use smallvec::SmallVec;

use super::{Padded, Window, for_each_chunk};
use crate::cpu::buffer::{self, Scratch};
use crate::element::Float;

/// `$body` once for each row `$m` of a tile, written out rather than looped: as a
/// loop over rows the compiler vectorises across the rows (gathering each sum
/// from memory); written out, it vectorises along each row and keeps the whole
/// tile in registers.
macro_rules! each_row {
    ($m:ident => $body:expr) => {
        each_row!(@rows $m => $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
    };
    (24 rows: $m:ident => $body:expr) => {
        each_row!(@rows $m => $body;
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23)
    };
    (@rows $m:ident => $body:expr; $($row:literal)*) => {
        $({
            let $m = $row;
            $body;
        })*
    };
}

/// Sums per side of a tile: output channels, and outputs (or weight-gradient
/// columns) per channel. 16 × 16 `f32` sums fill 16 of AVX-512's 32 registers.
pub const TILE: usize = 16;
const _: () = assert!(TILE == 16, "each_row! writes out sixteen rows");

/// One tile of sums: `TILE` rows of `TILE` lanes.
type Tile<T> = [[T; TILE]; TILE];

/// Output channels and columns of one weight-gradient tile. Its 24 rows of sums and
/// the 4 + 6 runs they are multiplied from would need 34 of AVX-512's 32 registers
/// if all were loaded at once; the compiler loads each channel's run as it goes,
/// so 31 are live (4 × 4 tiles, 8 loads per 16 multiply-adds, were ~10% slower).
const PRODUCT_CHANNELS: usize = 4;
const PRODUCT_COLUMNS: usize = 6;

/// One weight-gradient tile: `PRODUCT_CHANNELS · PRODUCT_COLUMNS` rows of lanes.
type ProductSums<T> = [[T; TILE]; PRODUCT_CHANNELS * PRODUCT_COLUMNS];

/// A stride-1 convolution laid out for the tile kernels: the padded geometry of
/// one image and, per row `k = (c, i, j)` of the virtual columns, where that row
/// starts in the image's padded planes.
#[derive(Clone, Debug)]
pub struct TiledConv {
    window: Window,
    padded: Padded,
    out_channels: usize,
    /// How far each tap `(i, j)` shifts a plane, in tap order: row `(c, i, j)` of
    /// the virtual columns starts at `c · plane_len + shifts[i·kw + j]`.
    shifts: SmallVec<[usize; 32]>,
}

impl TiledConv {
    /// The layout of a stride-1, single-group convolution of `window`'s images
    /// into `out_channels` channels.
    pub fn new(window: &Window, out_channels: usize) -> Self {
        assert_eq!(window.stride, (1, 1), "tiled convolution: stride 1 only");
        let window = Window {
            batch: 1,
            ..*window
        };
        let padded = Padded::new(&window);
        let (kh, kw) = window.kernel;
        let shifts = (0..kh * kw)
            .map(|tap| padded.shift(&window, tap / kw, tap % kw))
            .collect();
        TiledConv {
            window,
            padded,
            out_channels,
            shifts,
        }
    }

    /// Where row `k = (c, i, j)` of the virtual columns starts in an image's planes.
    fn offset(&self, k: usize) -> usize {
        let taps = self.shifts.len();
        k / taps * self.padded.plane_len + self.shifts[k % taps]
    }

    /// Rows of the virtual columns, `C · kh · kw`.
    fn taps(&self) -> usize {
        self.window.channels * self.window.kernel.0 * self.window.kernel.1
    }

    /// Outputs per wide plane, rounded up to whole tiles.
    fn wide_len(&self) -> usize {
        self.padded.wide_len.next_multiple_of(TILE)
    }

    /// Elements of one image's padded planes, with the zeros the last tile reads past them.
    fn planes_len(&self) -> usize {
        self.window.channels * self.padded.plane_len + TILE
    }

    /// One image's padded planes, then the zeros that the last tile reads past them.
    fn pad<T: Float>(&self, image: &[T]) -> Scratch<T> {
        let mut planes = Scratch::new(self.planes_len());
        self.pad_into(image, &mut planes);
        planes
    }

    /// [`TiledConv::pad`] into `planes` (`planes_len` elements).
    fn pad_into<T: Float>(&self, image: &[T], planes: &mut [T]) {
        let (planes, tail) = planes.split_at_mut(self.planes_len() - TILE);
        self.padded.pad_image(image, &self.window, planes);
        tail.fill(T::zero());
    }

    /// `out[n, o] = b[o] + Σ_k w[o, k] · columns_n[k]` for a batch `x` `[N, C, H, W]`
    /// and a weight `w` `[O, C, kh, kw]`; images in parallel when `parallel`.
    pub fn forward<T: Float>(
        &self,
        x: &[T],
        w: &[T],
        bias: Option<&[T]>,
        parallel: bool,
    ) -> Vec<T> {
        let (oh, ow) = self.window.output_size().expect("a checked window");
        let image_len = self.window.channels * self.window.height * self.window.width;
        let weights = self.pack_weights(w);
        let mut out = buffer::take(x.len() / image_len.max(1) * self.out_channels * oh * ow);
        for_each_chunk(&mut out, self.out_channels * oh * ow, parallel, |n, out| {
            let planes = self.pad(&x[n * image_len..][..image_len]);
            self.image_forward(&planes, &weights, bias, ow, out);
        });
        buffer::give(weights);
        out
    }

    /// The weight `[O, C·kh·kw]` regrouped for [`channel_tile`]: per tile of 16
    /// output channels, `[k][16]` (zeros for channels past `O`).
    fn pack_weights<T: Float>(&self, w: &[T]) -> Vec<T> {
        let taps = self.taps();
        let tiles = self.out_channels.div_ceil(TILE);
        let mut packed = buffer::zeroed(tiles * taps * TILE);
        for (o, weights) in w.chunks_exact(taps).enumerate() {
            let tile = &mut packed[o / TILE * taps * TILE..][..taps * TILE];
            for (k, &weight) in weights.iter().enumerate() {
                tile[k * TILE + o % TILE] = weight;
            }
        }
        packed
    }

    /// One image: every tile of sums, stored into `out` row by row or narrowed from
    /// the wide layout ([`TiledConv::tiles_by_rows`]).
    fn image_forward<T: Float>(
        &self,
        planes: &[T],
        weights: &[T],
        bias: Option<&[T]>,
        ow: usize,
        out: &mut [T],
    ) {
        let rows = self.taps();
        let plane_out = out.len() / self.out_channels.max(1);
        let by_rows = self.tiles_by_rows(ow);
        let mut wide = Scratch::new(if by_rows { 0 } else { TILE * self.wide_len() });
        for (tile, tile_weights) in weights.chunks_exact(rows * TILE).enumerate() {
            let first = tile * TILE;
            let channels = first..(first + TILE).min(self.out_channels);
            let mut start = [T::zero(); TILE];
            if let Some(bias) = bias {
                start[..channels.len()].copy_from_slice(&bias[channels.clone()]);
            }
            let sums_at = |p: usize| {
                crate::cpu::fused_simd(ChannelTile {
                    start,
                    weights: tile_weights,
                    planes: &planes[p..],
                    plane_len: self.padded.plane_len,
                    shifts: &self.shifts,
                })
            };
            let out = &mut out[first * plane_out..channels.end * plane_out];
            if by_rows {
                // each tile holds outputs of one row: they go straight to `out`
                for (y, x) in (0..plane_out / ow.max(1))
                    .flat_map(|y| (0..ow).step_by(TILE).map(move |x| (y, x)))
                {
                    let sums = sums_at(y * self.padded.width + x);
                    let real = TILE.min(ow - x);
                    for (plane, lanes) in out.chunks_exact_mut(plane_out).zip(&sums) {
                        store(&mut plane[y * ow + x..][..real], lanes);
                    }
                }
            } else {
                let wide_len = self.wide_len();
                for p in (0..wide_len).step_by(TILE) {
                    for (row, lanes) in sums_at(p).iter().enumerate() {
                        store(&mut wide[row * wide_len + p..][..TILE], lanes);
                    }
                }
                let wide = &wide[..channels.len() * wide_len];
                narrow(wide, wide_len, &self.padded, ow, out);
            }
        }
    }

    /// Whether tiles should start at every output row (16 outputs of one row
    /// each, stored straight into place) rather than run through the wide layout
    /// (16 consecutive wide outputs, narrowed afterwards): whichever computes fewer
    /// sums that are dropped. Rows of 16 or 32 (ResNet's CIFAR stages) go by rows,
    /// rows of 8 (a tile of 16 sums for 8 real outputs) through the wide layout.
    fn tiles_by_rows(&self, ow: usize) -> bool {
        let oh = self.padded.wide_len / self.padded.width;
        oh * ow.next_multiple_of(TILE) <= self.wide_len()
    }
}

/// The first `target.len()` lanes of a tile's row into `target`: a whole row as
/// one array assignment (vector moves, not a `memcpy` call).
#[inline(always)]
fn store<T: Copy>(target: &mut [T], lanes: &[T; TILE]) {
    match <&mut [T; TILE]>::try_from(&mut *target) {
        Ok(whole) => *whole = *lanes,
        Err(_) => crate::cpu::copy_row(target, &lanes[..target.len()]),
    }
}

impl TiledConv {
    /// Whether the input gradient can run as a tiled convolution too: the padding
    /// of the output gradient, `dilation · (k − 1) − padding`, must not be negative.
    pub fn input_grad_fits(window: &Window) -> bool {
        let (kh, kw) = window.kernel;
        window.padding.0 <= window.dilation.0 * (kh - 1)
            && window.padding.1 <= window.dilation.1 * (kw - 1)
    }

    /// dL/dx for the output gradient `grad_output` `[N, O, OH, OW]`: the output
    /// gradient, padded by `dilation · (k − 1) − padding`, convolved with the kernel
    /// flipped and its channel axes swapped — `dx[c] = Σ_o Σ_(i,j) w[o, c, kh−1−i,
    /// kw−1−j] · g[o]` shifted by (i, j). Needs [`TiledConv::input_grad_fits`].
    pub fn input_grad<T: Float>(&self, grad_output: &[T], w: &[T], parallel: bool) -> Vec<T> {
        let win = &self.window;
        let (kh, kw) = win.kernel;
        let (oh, ow) = win.output_size().expect("a checked window");
        let transposed = Window {
            channels: self.out_channels,
            height: oh,
            width: ow,
            padding: (
                win.dilation.0 * (kh - 1) - win.padding.0,
                win.dilation.1 * (kw - 1) - win.padding.1,
            ),
            ..*win
        };
        let taps = kh * kw;
        let mut flipped = buffer::take(w.len());
        for (o, kernels) in w.chunks_exact(win.channels * taps).enumerate() {
            for (c, kernel) in kernels.chunks_exact(taps).enumerate() {
                let target = &mut flipped[(c * self.out_channels + o) * taps..][..taps];
                target
                    .iter_mut()
                    .zip(kernel.iter().rev())
                    .for_each(|(t, &v)| *t = v);
            }
        }
        let grad_input = TiledConv::new(&transposed, win.channels).forward(
            grad_output,
            &flipped,
            None,
            parallel,
        );
        buffer::give(flipped);
        grad_input
    }

    /// dL/dW `[O, C·kh·kw]`: `dw[o, k] = Σ_n Σ_p g[n, o, p] · columns_n[k, p]`,
    /// summed over fixed chunks of images in parallel, then the chunks' sums in
    /// order — the same result for any number of threads.
    pub fn weight_grad<T: Float>(&self, grad_output: &[T], x: &[T], parallel: bool) -> Vec<T> {
        let (oh, ow) = self.window.output_size().expect("a checked window");
        let image_len = self.window.channels * self.window.height * self.window.width;
        let out_len = self.out_channels * oh * ow;
        let batch = x.len() / image_len.max(1);
        let weight_len = self.out_channels * self.taps();
        // enough outputs per chunk that a tile's lanes are summed rarely
        let images_per_partial = (PARTIAL_OUTPUTS / self.wide_len()).clamp(4, 16);
        let chunks = batch.div_ceil(images_per_partial);
        let mut partials = buffer::take(chunks * weight_len);
        for_each_chunk(
            &mut partials,
            weight_len,
            parallel && chunks > 1,
            |chunk, partial| {
                let images =
                    chunk * images_per_partial..((chunk + 1) * images_per_partial).min(batch);
                // every image of the chunk at once, in two scratch buffers
                let (planes_len, grads_len) =
                    (self.planes_len(), self.out_channels * self.wide_len());
                let mut planes = Scratch::new(images.len() * planes_len);
                let mut grads = Scratch::new(images.len() * grads_len);
                for ((n, planes), grads) in images
                    .zip(planes.chunks_exact_mut(planes_len))
                    .zip(grads.chunks_exact_mut(grads_len))
                {
                    self.pad_into(&x[n * image_len..][..image_len], planes);
                    self.widen_into(&grad_output[n * out_len..][..out_len], ow, grads);
                }
                self.chunk_weight_grad(&planes, &grads, partial);
            },
        );
        let mut grad_w = buffer::zeroed(weight_len);
        crate::cpu::reduce::add_partials(&mut grad_w, &partials);
        buffer::give(partials);
        grad_w
    }

    /// One image's output gradient `[O, OH, OW]` in the wide layout, each plane
    /// rounded up to whole tiles: zeros in the wide rows' extra columns and the
    /// tail, so that they add nothing to the weight gradient.
    fn widen_into<T: Float>(&self, grad: &[T], ow: usize, wide: &mut [T]) {
        let wide_len = self.wide_len();
        wide.fill(T::zero());
        let plane_len = grad.len() / self.out_channels.max(1);
        for (wide, plane) in wide
            .chunks_exact_mut(wide_len)
            .zip(grad.chunks_exact(plane_len))
        {
            for (wide_row, row) in wide
                .chunks_exact_mut(self.padded.width)
                .zip(plane.chunks_exact(ow))
            {
                crate::cpu::copy_row(&mut wide_row[..ow], row);
            }
        }
    }

    /// `partial[o, k] = Σ over the chunk's images n, Σ_p grads_n[o, p] · planes_n[offset(k) + p]`,
    /// one tile of 4 output channels × 6 columns at a time.
    fn chunk_weight_grad<T: Float>(&self, planes: &[T], grads: &[T], partial: &mut [T]) {
        let (taps, wide_len) = (self.taps(), self.wide_len());
        for first_channel in (0..self.out_channels).step_by(PRODUCT_CHANNELS) {
            // rows past the last channel repeat it; their sums are dropped
            let rows: [usize; PRODUCT_CHANNELS] =
                std::array::from_fn(|a| (first_channel + a).min(self.out_channels - 1) * wide_len);
            for tile in 0..taps.div_ceil(PRODUCT_COLUMNS) {
                // columns past the last repeat it; their sums are dropped
                let offsets: [usize; PRODUCT_COLUMNS] = std::array::from_fn(|b| {
                    self.offset((tile * PRODUCT_COLUMNS + b).min(taps - 1))
                });
                let sums = crate::cpu::fused_simd(ProductTile {
                    planes,
                    planes_len: self.planes_len(),
                    grads,
                    grads_len: self.out_channels * wide_len,
                    rows,
                    offsets: &offsets,
                    wide_len,
                });
                for (m, lanes) in sums.iter().enumerate() {
                    let (o, k) = (
                        first_channel + m / PRODUCT_COLUMNS,
                        tile * PRODUCT_COLUMNS + m % PRODUCT_COLUMNS,
                    );
                    if o < self.out_channels && k < taps {
                        partial[o * taps + k] = lane_sum(*lanes);
                    }
                }
            }
        }
    }
}

/// Outputs per image chunk of the weight gradient to aim for (see [`TiledConv::weight_grad`]).
const PARTIAL_OUTPUTS: usize = 2048;

/// The work of [`product_tile`], for [`crate::cpu::fused_simd`].
struct ProductTile<'a, T: Float> {
    /// The chunk's images' padded planes, `planes_len` apart.
    planes: &'a [T],
    planes_len: usize,
    /// The chunk's images' output gradients, widened, `grads_len` apart.
    grads: &'a [T],
    grads_len: usize,
    /// Where each of the tile's channels starts in an image's gradients.
    rows: [usize; PRODUCT_CHANNELS],
    /// Where each of the tile's columns starts in an image's planes.
    offsets: &'a [usize; PRODUCT_COLUMNS],
    wide_len: usize,
}

impl<T: Float> crate::cpu::SimdKernel for ProductTile<'_, T> {
    type Output = ProductSums<T>;

    #[inline(always)]
    fn run(self) -> ProductSums<T> {
        let mut sums: ProductSums<T> = [[T::zero(); TILE]; PRODUCT_CHANNELS * PRODUCT_COLUMNS];
        let images = self
            .planes
            .chunks_exact(self.planes_len)
            .zip(self.grads.chunks_exact(self.grads_len));
        for (planes, grads) in images {
            let [a, b, c, d] = self.rows;
            let grads = [&grads[a..], &grads[b..], &grads[c..], &grads[d..]];
            sums = product_tile(sums, grads, planes, self.offsets, self.wide_len);
        }
        sums
    }
}

/// `sums[6a + b][l] += Σ_(p ≡ l mod 16) grads[a][p] · planes[offsets[b] + p]`
/// over `p < wide_len`: the products of 4 output channels' gradients with 6
/// columns, sixteen outputs at a time in sixteen lanes (summed across lanes once,
/// at the end). Each step loads 10 runs for 24 multiply-adds.
#[inline(always)]
fn product_tile<T: Float>(
    mut sums: ProductSums<T>,
    grads: [&[T]; PRODUCT_CHANNELS],
    planes: &[T],
    offsets: &[usize; PRODUCT_COLUMNS],
    wide_len: usize,
) -> ProductSums<T> {
    let run =
        |values: &[T], at: usize| -> [T; TILE] { values[at..][..TILE].try_into().expect("a run") };
    for p in (0..wide_len).step_by(TILE) {
        // written out rather than mapped over arrays: a call here would spill the tile
        let g = [
            run(grads[0], p),
            run(grads[1], p),
            run(grads[2], p),
            run(grads[3], p),
        ];
        let x = [
            run(planes, offsets[0] + p),
            run(planes, offsets[1] + p),
            run(planes, offsets[2] + p),
            run(planes, offsets[3] + p),
            run(planes, offsets[4] + p),
            run(planes, offsets[5] + p),
        ];
        each_row!(24 rows: m => sums[m] = product_add(sums[m], &g[m / 6], &x[m % 6]));
    }
    sums
}

/// `sums + a · b`, lane by lane, each lane one fused multiply-add.
#[inline(always)]
fn product_add<T: Float>(mut sums: [T; TILE], a: &[T; TILE], b: &[T; TILE]) -> [T; TILE] {
    for l in 0..TILE {
        sums[l] = a[l].mul_add(b[l], sums[l]);
    }
    sums
}

/// The sum of sixteen lanes, halving: the same order every time.
fn lane_sum<T: Float>(mut lanes: [T; TILE]) -> T {
    let mut width = TILE;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
    }
    lanes[0]
}

/// Wide planes (`wide_len` apart, rows `padded.width` long) → their first `ow`
/// columns of each row, plane after plane.
fn narrow<T: Float>(wide: &[T], wide_len: usize, padded: &Padded, ow: usize, out: &mut [T]) {
    let oh = padded.wide_len / padded.width;
    for (plane, wide) in out
        .chunks_exact_mut(oh * ow)
        .zip(wide.chunks_exact(wide_len))
    {
        for (row, wide_row) in plane.chunks_exact_mut(ow).zip(wide.chunks(padded.width)) {
            crate::cpu::copy_row(row, &wide_row[..ow]);
        }
    }
}

/// The work of [`channel_tile`], for [`crate::cpu::fused_simd`].
struct ChannelTile<'a, T> {
    start: [T; TILE],
    weights: &'a [T],
    planes: &'a [T],
    plane_len: usize,
    shifts: &'a [usize],
}

impl<T: Float> crate::cpu::SimdKernel for ChannelTile<'_, T> {
    type Output = Tile<T>;

    #[inline(always)]
    fn run(self) -> Tile<T> {
        let ChannelTile {
            start,
            weights,
            planes,
            plane_len,
            shifts,
        } = self;
        channel_tile(start, weights, planes, plane_len, shifts)
    }
}

/// `sums[m][l] = start[m] + Σ_(c, tap) weights[c, tap][m] · planes[c · plane_len +
/// shifts[tap] + l]`: sixteen channels `m` of sixteen neighbouring outputs `l`.
/// Each step broadcasts one weight per channel against one run of sixteen inputs.
#[inline(always)]
fn channel_tile<T: Float>(
    start: [T; TILE],
    weights: &[T],
    planes: &[T],
    plane_len: usize,
    shifts: &[usize],
) -> Tile<T> {
    let mut sums: Tile<T> = start.map(|s| [s; TILE]);
    for (c, weights) in weights.chunks_exact(shifts.len() * TILE).enumerate() {
        let plane = &planes[c * plane_len..];
        for (weights, &shift) in weights.chunks_exact(TILE).zip(shifts) {
            let inputs: &[T; TILE] = plane[shift..][..TILE].try_into().expect("a run");
            let weights: &[T; TILE] = weights.try_into().expect("a tile's weights");
            // sums[m] = scaled_add(sums[m], weights[m], inputs) for each row m
            each_row!(m => sums[m] = scaled_add(sums[m], weights[m], inputs));
        }
    }
    sums
}

/// `sums + scale · values`, lane by lane, each lane one fused multiply-add. Taking
/// and returning one row by value is what lets the compiler keep a whole tile in
/// registers and vectorise along the row.
#[inline(always)]
fn scaled_add<T: Float>(mut sums: [T; TILE], scale: T, values: &[T; TILE]) -> [T; TILE] {
    for l in 0..TILE {
        sums[l] = scale.mul_add(values[l], sums[l]);
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    /// Every output is one chain of multiply-adds in a fixed order, whichever task
    /// computes it: in parallel and on one thread the bits are the same.
    #[test]
    fn parallel_and_serial_give_the_same_bits() {
        let window = Window {
            batch: 40,
            channels: 16,
            height: 8,
            width: 16,
            kernel: (3, 3),
            stride: (1, 1),
            padding: (1, 1),
            dilation: (1, 1),
        };
        let out_channels = 20;
        let mut rng = crate::rng(3);
        let x = Tensor::<f32>::randn(&[40, 16, 8, 16], 0.0, 1.0, &mut rng).to_vec();
        let w = Tensor::<f32>::randn(&[20, 16, 3, 3], 0.0, 1.0, &mut rng).to_vec();
        let g = Tensor::<f32>::randn(&[40, 20, 8, 16], 0.0, 1.0, &mut rng).to_vec();
        let conv = TiledConv::new(&window, out_channels);
        crate::threads::ensure_init();
        for parallel in [false, true] {
            let bits = |values: Vec<f32>| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let serial = (
                bits(conv.forward(&x, &w, None, false)),
                bits(conv.input_grad(&g, &w, false)),
                bits(conv.weight_grad(&g, &x, false)),
            );
            let run = (
                bits(conv.forward(&x, &w, None, parallel)),
                bits(conv.input_grad(&g, &w, parallel)),
                bits(conv.weight_grad(&g, &x, parallel)),
            );
            assert!(serial == run, "parallel = {parallel}: results differ");
        }
    }
}
