//! The geometry of a sliding window (convolution or pooling) on NCHW input: the
//! options a user gives ([`Conv2dOptions`]), the sizes they make ([`Window`]), and
//! where each tap falls.

/// Stride, zero padding, dilation and groups of a convolution, as in PyTorch's
/// `nn.Conv2d`. `Conv2dOptions::default()` is stride 1, no padding, dilation 1, one group.
///
/// ```
/// let options = nabla::Conv2dOptions::default().padding(2).stride(1);
/// assert_eq!(options.padding, (2, 2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dOptions {
    /// Step between receptive fields, (vertical, horizontal).
    pub stride: (usize, usize),
    /// Zeros added on each side, (vertical, horizontal).
    pub padding: (usize, usize),
    /// Spacing between kernel taps, (vertical, horizontal).
    pub dilation: (usize, usize),
    /// Channel groups: input and output channels split into this many independent convolutions.
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

impl Conv2dOptions {
    /// The same stride on both axes.
    pub fn stride(self, stride: usize) -> Self {
        Conv2dOptions {
            stride: (stride, stride),
            ..self
        }
    }
    /// The same padding on both axes.
    pub fn padding(self, padding: usize) -> Self {
        Conv2dOptions {
            padding: (padding, padding),
            ..self
        }
    }
    /// The same dilation on both axes.
    pub fn dilation(self, dilation: usize) -> Self {
        Conv2dOptions {
            dilation: (dilation, dilation),
            ..self
        }
    }
    /// The number of groups.
    pub fn groups(self, groups: usize) -> Self {
        Conv2dOptions { groups, ..self }
    }
}

/// Sizes of a 2-D sliding-window op (convolution or pooling) on NCHW input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Images in the batch (N).
    pub batch: usize,
    /// Channels per image (C).
    pub channels: usize,
    /// Input height (H).
    pub height: usize,
    /// Input width (W).
    pub width: usize,
    /// Window size, (rows, columns).
    pub kernel: (usize, usize),
    /// Step between windows, (rows, columns).
    pub stride: (usize, usize),
    /// Zeros added on each side, (rows, columns).
    pub padding: (usize, usize),
    /// Spacing between window taps, (rows, columns).
    pub dilation: (usize, usize),
}

impl Window {
    /// Output height and width: `⌊(in + 2·pad − dilation·(k − 1) − 1) / stride⌋ + 1`,
    /// or `None` if the (dilated) kernel does not fit in the padded input.
    pub fn output_size(&self) -> Option<(usize, usize)> {
        let axis = |input: usize, kernel: usize, stride: usize, pad: usize, dilation: usize| {
            let span = dilation * (kernel - 1) + 1;
            (input + 2 * pad)
                .checked_sub(span)
                .map(|room| room / stride + 1)
        };
        Some((
            axis(
                self.height,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            axis(
                self.width,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }

    /// Calls `visit` with each in-plane index (`iy·width + ix`) that output pixel
    /// (oy, ox) reads, skipping taps that fall in the padding.
    #[inline]
    pub(crate) fn for_each_tap(&self, oy: usize, ox: usize, mut visit: impl FnMut(usize)) {
        for i in 0..self.kernel.0 {
            let Some(iy) = Window::source(
                oy,
                i,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
                self.height,
            ) else {
                continue;
            };
            for j in 0..self.kernel.1 {
                if let Some(ix) = Window::source(
                    ox,
                    j,
                    self.stride.1,
                    self.padding.1,
                    self.dilation.1,
                    self.width,
                ) {
                    visit(iy * self.width + ix);
                }
            }
        }
    }

    pub(crate) fn out(&self) -> (usize, usize) {
        self.output_size().expect("window checked by the op")
    }

    /// The input row that output row `oy`, kernel row `i` reads, or `None` in the padding.
    #[inline]
    pub(crate) fn source_row(&self, oy: usize, i: usize) -> Option<usize> {
        let (stride, pad, dilation) = (self.stride.0, self.padding.0, self.dilation.0);
        Window::source(oy, i, stride, pad, dilation, self.height)
    }

    /// The input column that output column `ox`, kernel column `j` reads; only for
    /// `ox` inside [`Window::inside_columns`].
    #[inline]
    pub(crate) fn source_column(&self, ox: usize, j: usize) -> usize {
        ox * self.stride.1 + j * self.dilation.1 - self.padding.1
    }

    /// The output columns whose kernel column `j` lands inside the input (not in the
    /// padding): one contiguous range, so rows can be copied instead of tested pixel by pixel.
    pub(crate) fn inside_columns(&self, j: usize, ow: usize) -> std::ops::Range<usize> {
        let (stride, pad, offset) = (self.stride.1, self.padding.1, j * self.dilation.1);
        // ix = ox·stride + offset − pad must satisfy 0 ≤ ix < width.
        let first = pad.saturating_sub(offset).div_ceil(stride);
        let end = (self.width + pad)
            .checked_sub(offset + 1)
            .map_or(0, |last| last / stride + 1)
            .min(ow);
        first.min(end)..end
    }

    /// The input coordinate that output position `o`, kernel tap `k` reads on one
    /// axis, or `None` if it falls in the padding.
    #[inline]
    pub(crate) fn source(
        o: usize,
        k: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        size: usize,
    ) -> Option<usize> {
        (o * stride + k * dilation)
            .checked_sub(pad)
            .filter(|&i| i < size)
    }
}
