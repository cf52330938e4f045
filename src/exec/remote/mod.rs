//! What running a job elsewhere adds: the wrapper script and its control lines (`wrap`),
//! Slurm steps (`slurm`), Slurm batch jobs for background work (`sbatch`), and ssh hosts
//! (`ssh`).

mod control;
pub mod sbatch;
pub mod slurm;
pub mod ssh;
pub mod wrap;
