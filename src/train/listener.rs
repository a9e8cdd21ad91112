//! Listeners: what follows a training run as [`super::fit_with`] reports it — a
//! progress bar (`nabla::cli`), the run directory ([`crate::run::RunDir`]), TensorBoard
//! files, the dashboard, a Ctrl-C watch ([`Interrupt`]). Each lives in the room that
//! owns what it writes; the loop knows only this trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Control, Event};
use crate::distributed::World;
use crate::error::Result;

/// Follows a training run: sees every [`Event`] and may stop the run (or end it
/// with an error, which `fit_with` returns).
pub trait Listener {
    /// One event of the run.
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control>;
}

/// A closure is a listener that never fails.
impl<F: FnMut(&Event<'_>) -> Control> Listener for F {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control> {
        Ok(self(event))
    }
}

/// Stops the run after the step during which `flag` was set (by a Ctrl-C or
/// SIGTERM handler). With several ranks every rank must have one: the flag is summed
/// over them each step, so all stop at the same step, or the others would wait for
/// the stopped one forever.
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    world: World,
}

impl Interrupt {
    /// Watches `flag` on every rank of `world`.
    pub fn new(flag: Arc<AtomicBool>, world: &World) -> Interrupt {
        Interrupt {
            flag,
            world: world.clone(),
        }
    }
}

impl Listener for Interrupt {
    fn on_event(&mut self, event: &Event<'_>) -> Result<Control> {
        if !matches!(event, Event::BatchEnd { .. }) {
            return Ok(Control::Continue);
        }
        let mut set = [f64::from(u8::from(self.flag.load(Ordering::SeqCst)))];
        self.world.sum_f64(&mut set);
        Ok(if set[0] > 0.0 {
            Control::Stop
        } else {
            Control::Continue
        })
    }
}
