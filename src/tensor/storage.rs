//! Where a tensor's values live: the one seam between the tensor handle and a
//! device. Today every tensor lives in the CPU's memory; a GPU backend adds a
//! variant here (device memory plus the stream that owns it) and kernels for it,
//! and the tensor handle, the graph walk and the ops' backward rules stay as they are.

use std::cell::RefCell;
use std::rc::Rc;

use crate::element::Float;

/// The devices a tensor can live on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Device {
    /// Main memory; kernels in [`crate::cpu`].
    Cpu,
}

/// A tensor's values on its device.
#[derive(Debug)]
pub enum Storage<T: Float> {
    /// Row-major values in main memory, from (and back to) the buffer pool.
    Cpu(Vec<T>),
}

/// Storage shared by the tensors that view it (`reshape`, `detach`).
pub(crate) type SharedStorage<T> = Rc<RefCell<Storage<T>>>;

impl<T: Float> Storage<T> {
    /// The device holding the values.
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }

    /// The values, readable by CPU kernels.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Storage::Cpu(values) => values,
        }
    }

    /// The values, writable by CPU kernels.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Storage::Cpu(values) => values,
        }
    }

    /// Shares new CPU values.
    pub(crate) fn shared(values: Vec<T>) -> SharedStorage<T> {
        Rc::new(RefCell::new(Storage::Cpu(values)))
    }

    /// Hands the memory back to where it came from (the CPU buffer pool), leaving
    /// this storage empty.
    pub(crate) fn release(&mut self) {
        match self {
            Storage::Cpu(values) => crate::cpu::buffer::give(std::mem::take(values)),
        }
    }
}
