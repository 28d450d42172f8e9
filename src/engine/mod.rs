//! How a cycle's plan is computed. One engine today, polars, on this
//! machine; a second engine is a folder beside it, computing from the same
//! checked [`crate::plan`].

pub mod polars;
