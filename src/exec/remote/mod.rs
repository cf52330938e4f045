//! What running a job elsewhere adds: the wrapper script and its control lines (`wrap`),
//! Slurm steps (`slurm`), the allocations many of them share (`alloc`) and the worker steps
//! there that run job after job (`worker`), Slurm batch jobs for background work (`sbatch`, followed together by
//! `follow`), one `scancel` for many jobs (`scancel`), and ssh hosts (`ssh`).

pub mod alloc;
pub mod array;
mod array_tasks;
mod control;
mod follow;
mod limits;
mod moves;
pub mod sbatch;
mod scancel;
pub mod slurm;
mod squeue;
pub mod ssh;
pub mod worker;
pub mod wrap;
