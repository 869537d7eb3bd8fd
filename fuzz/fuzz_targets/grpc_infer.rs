//! Fuzzes the gRPC `ModelInferRequest` decode and conversion (typed contents and
//! raw_input_contents) into the runtime's tensors.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    modelbay_server::fuzzing::grpc_infer(data);
});
