//! A guest's failure in one line for people: what happened, then where it happened (the guest
//! function, demangled, and the offset in it). wasmtime's own rendering puts a multi-line wasm
//! backtrace before the reason; the backtrace is kept apart here, for `-v`.

use wasmtime::{FrameInfo, WasmBacktrace};

/// What a failed call into a guest comes to.
pub(crate) struct Described {
    /// One line: the reason and, when known, the function and offset where it happened.
    pub(crate) message: String,
    /// The whole wasm backtrace, innermost frame first, when wasmtime captured one.
    pub(crate) backtrace: Option<String>,
}

/// Describes `e`, an error out of a call into a guest.
pub(crate) fn describe(e: &wasmtime::Error) -> Described {
    let backtrace = e.downcast_ref::<WasmBacktrace>().filter(|b| !b.frames().is_empty());
    let rendered = backtrace.map(|b| b.to_string());
    // The error's chain without the backtrace, which wasmtime adds as context when the error
    // crosses out of wasm: a trap, or a host function's error with its own context.
    let reason = e
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| Some(text) != rendered.as_ref() && !text.is_empty())
        .map(|text| text.strip_prefix("wasm trap: ").map_or(text.clone(), str::to_string))
        .collect::<Vec<_>>()
        .join(": ");
    let message = match backtrace.and_then(|b| b.frames().first()) {
        Some(frame) => format!("{reason} in {}", location(frame)),
        None => reason,
    };
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    Described { message, backtrace: rendered }
}

/// `function `name` at offset 0x1a (module offset 0x2f0)`, with what wasmtime knows.
fn location(frame: &FrameInfo) -> String {
    let name = match frame.func_name() {
        Some(raw) => format!("`{:#}`", rustc_demangle::demangle(raw)),
        None => format!("function #{}", frame.func_index()),
    };
    match (frame.func_offset(), frame.module_offset()) {
        (Some(f), Some(m)) => format!("{name} at offset {f:#x} (module offset {m:#x})"),
        (None, Some(m)) => format!("{name} (module offset {m:#x})"),
        _ => name,
    }
}
