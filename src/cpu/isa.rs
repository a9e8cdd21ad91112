//! Which vector instructions the kernels use: the widest the CPU has, unless the
//! `NABLA_ISA` environment variable asks for less. Forcing `avx2` on an AVX-512
//! machine runs the code most users' CPUs run, so that tests and benchmarks can
//! check both paths on one machine (`.ci/run` runs the kernel tests both ways).

use std::sync::OnceLock;

/// An instruction set the kernels are compiled for, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// The x86-64 baseline (SSE2: 4 floats a vector), or any other architecture.
    Baseline,
    /// AVX2 and FMA: 8 floats a vector, 16 vector registers.
    Avx2,
    /// AVX-512F and FMA: 16 floats a vector, 32 vector registers.
    Avx512,
}

impl Isa {
    /// The name `NABLA_ISA` takes and `nabla bench` prints.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Baseline => "baseline",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }
}

/// The instruction set in use: the CPU's best, capped by `NABLA_ISA`
/// (`baseline`, `avx2` or `avx512`; another value is reported once and ignored).
/// Decided once per process.
#[inline]
pub fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let detected = detected();
        let Ok(asked) = std::env::var("NABLA_ISA") else {
            return detected;
        };
        let cap = [Isa::Baseline, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .find(|isa| isa.name() == asked.trim().to_lowercase());
        match cap {
            Some(cap) => cap.min(detected),
            None => {
                eprintln!(
                    "warning: NABLA_ISA={asked} is not one of baseline, avx2, avx512; using {}",
                    detected.name()
                );
                detected
            }
        }
    })
}

/// What this CPU supports.
fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        let fma = std::is_x86_feature_detected!("fma");
        if fma && std::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if fma && std::is_x86_feature_detected!("avx2") {
            return Isa::Avx2;
        }
    }
    Isa::Baseline
}
