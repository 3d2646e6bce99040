//! holdfast
