//! Drop-in APIs of the code-execution services people already have clients for, answered by
//! sandpit's own runs engine and job queue: Judge0 CE under `/judge0`, Piston v2 under
//! `/piston`.

pub mod judge0;
pub mod piston;
