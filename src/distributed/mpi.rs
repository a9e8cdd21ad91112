//! The [`Communicator`] over MPI (feature `mpi`): Open MPI, MPICH or any other
//! implementation, launched by `mpirun`/`srun`, over shared memory or the network.

use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex};

use mpi::collective::SystemOperation;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{AsRaw, CommunicatorCollectives, Equivalence};

use super::{Communicator, World};

/// Whether this process was started by an MPI launcher (Open MPI's `mpirun`,
/// MPICH's Hydra, Slurm's PMI): only then is MPI worth initialising.
pub fn launched_by_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .any(|name| std::env::var_os(name).is_some())
}

/// Asks Open MPI to yield the core while a collective waits for the other ranks,
/// unless the user chose otherwise (`OMPI_MCA_mpi_yield_when_idle` set). By default
/// it busy-polls; on the communication thread that spinning takes the core from the
/// rank's own backward whenever the ranks fill the machine's cores (measured: mlp,
/// 2 ranks × 1 thread on 2 cores, 0.61 → 0.50 s per epoch). Where a core is free,
/// yielding returns at once and costs nothing. Other MPIs ignore the variable.
/// Call it before [`Mpi::init`].
///
/// # Safety
///
/// It sets an environment variable: no other thread may read or write the
/// environment meanwhile (call it before starting threads).
pub unsafe fn prefer_yielding() {
    const YIELD: &str = "OMPI_MCA_mpi_yield_when_idle";
    if std::env::var_os(YIELD).is_none() {
        // SAFETY: the caller guarantees that no other thread touches the environment.
        unsafe { std::env::set_var(YIELD, "1") };
    }
}

/// How many ranks run on this machine (to share its cores among them).
pub fn ranks_on_this_node() -> usize {
    ["OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"]
        .iter()
        .find_map(|name| std::env::var(name).ok()?.parse().ok())
        .unwrap_or(1)
}

/// MPI's `MPI_IN_PLACE` for this library, if known: the address that tells an
/// all-reduce to sum in the receive buffer itself, which saves MPI a copy of the
/// whole message into it (on this project's machine, 26 of the 128 µs that summing
/// the MLP's 0.8 MB first-layer gradient over two ranks takes). The `mpi` crate does
/// not export it, and it differs between the two ABIs in use — `(void *) 1` in Open
/// MPI, `(void *) -1` in MPICH and the MPIs built on it (Intel MPI, MVAPICH, Cray
/// MPICH) — so it is told from the library's version string, as MPI.jl does. For
/// any other library the sums go through a copy.
fn in_place_sentinel(library_version: &str) -> Option<usize> {
    if library_version.starts_with("Open MPI") {
        Some(1)
    } else if ["MPICH", "MVAPICH", "Intel(R) MPI"]
        .iter()
        .any(|name| library_version.contains(name))
    {
        Some(usize::MAX)
    } else {
        None
    }
}

/// MPI's world communicator. Calls are made one at a time (a lock), from whichever
/// thread — which is what MPI's `MPI_THREAD_SERIALIZED` level allows.
pub struct Mpi {
    rank: usize,
    size: usize,
    /// [`in_place_sentinel`] of the library in use.
    in_place: Option<usize>,
    /// Held for the life of the process; dropping it finalises MPI.
    universe: Mutex<Option<mpi::environment::Universe>>,
}

impl Mpi {
    /// Initialises MPI and joins the job's world. Fails if MPI was initialised
    /// already or cannot let two threads take turns calling it.
    pub fn init() -> Result<World, String> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or("MPI was already initialised in this process")?;
        if threading < mpi::Threading::Serialized {
            return Err(format!(
                "this MPI library offers thread support {threading:?}; nabla needs Serialized \
                 (its gradients travel on their own thread while backward runs)"
            ));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let version = mpi::environment::library_version().unwrap_or_default();
        Ok(World::new(Arc::new(Mpi {
            rank,
            size,
            in_place: in_place_sentinel(&version),
            universe: Mutex::new(Some(universe)),
        })))
    }

    /// The world communicator, while holding the lock that keeps calls one at a time.
    fn with_world<R>(&self, call: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let universe = self.universe.lock().unwrap_or_else(|e| e.into_inner());
        let universe = universe.as_ref().expect("MPI is finalised only on drop");
        call(&universe.world())
    }
}

impl Communicator for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn sum_f32(&self, values: &mut [f32]) {
        let count = c_int::try_from(values.len());
        self.with_world(|world| match (self.in_place, count) {
            (Some(in_place), Ok(count)) => {
                // SAFETY: `in_place` is this library's MPI_IN_PLACE (see
                // `in_place_sentinel`), which MPI never dereferences; `values` is a
                // live, exclusively borrowed buffer of `count` f32s, described by
                // MPI's f32 datatype; the lock held by `with_world` keeps MPI calls
                // one at a time; the call returns only when the sums are written.
                unsafe {
                    mpi::ffi::MPI_Allreduce(
                        std::ptr::without_provenance::<c_void>(in_place),
                        values.as_mut_ptr().cast(),
                        count,
                        f32::equivalent_datatype().as_raw(),
                        SystemOperation::sum().as_raw(),
                        world.as_raw(),
                    );
                }
            }
            _ => {
                let sent = values.to_vec();
                world.all_reduce_into(&sent[..], values, SystemOperation::sum());
            }
        });
    }

    fn sum_f64(&self, values: &mut [f64]) {
        // a few values (losses, counts, statistics): the copy costs nothing
        let sent = values.to_vec();
        self.with_world(|world| world.all_reduce_into(&sent[..], values, SystemOperation::sum()));
    }

    fn gather_u64(&self, value: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size];
        self.with_world(|world| world.all_gather_into(&value, &mut all[..]));
        all
    }

    fn gather_f32(&self, values: &[f32]) -> Vec<f32> {
        let mut all = vec![0.0f32; values.len() * self.size];
        self.with_world(|world| world.all_gather_into(values, &mut all[..]));
        all
    }

    fn abort(&self, code: i32) -> ! {
        // Not behind the lock: the communication thread may hold it, blocked in an
        // all-reduce that will never complete, and aborting is what ends that.
        SimpleCommunicator::world().abort(code)
    }
}

#[cfg(test)]
mod tests {
    use super::in_place_sentinel;

    #[test]
    fn in_place_is_known_for_the_two_abis_and_no_other() {
        let open_mpi = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4";
        assert_eq!(in_place_sentinel(open_mpi), Some(1));
        assert_eq!(in_place_sentinel("MPICH Version:\t4.0.2"), Some(usize::MAX));
        assert_eq!(
            in_place_sentinel("MPI VERSION    : CRAY MPICH version 8.1.4"),
            Some(usize::MAX)
        );
        assert_eq!(
            in_place_sentinel("Intel(R) MPI Library 2021.6"),
            Some(usize::MAX)
        );
        assert_eq!(in_place_sentinel("Microsoft MPI 10.1"), None);
        assert_eq!(in_place_sentinel(""), None);
    }
}
