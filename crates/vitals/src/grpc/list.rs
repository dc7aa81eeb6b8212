//! `List` (gRPC proposal A90): every configured name and its status in one answer.
//!
//! `tonic-health` 0.14 generates Check and Watch only, so the two List messages are declared
//! here with prost's derive, field for field as in grpc-proto's `health.proto`
//! (`HealthListRequest {}`, `HealthListResponse { map<string, HealthCheckResponse> statuses =
//! 1; }`), and the method is routed by [`super::HealthService`]. The Python client of
//! `grpcio-health-checking` calls it in the tests, which is what proves the wire format.

use std::collections::HashMap;

use tonic::codegen::BoxFuture;
use tonic::{Request, Response, Status};

use super::pb::HealthCheckResponse;
use super::{GrpcHealth, MAX_LISTED, response};

/// The method's path.
pub(crate) const PATH: &str = "/grpc.health.v1.Health/List";

/// `grpc.health.v1.HealthListRequest`: no fields.
#[derive(Clone, Copy, PartialEq, Eq, ::prost::Message)]
pub struct HealthListRequest {}

/// `grpc.health.v1.HealthListResponse`: each name and its status.
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct HealthListResponse {
    #[prost(map = "string, message", tag = "1")]
    pub statuses: HashMap<String, HealthCheckResponse>,
}

/// The unary method tonic's server drives.
pub(crate) struct ListSvc(pub(crate) GrpcHealth);

impl tonic::server::UnaryService<HealthListRequest> for ListSvc {
    type Response = HealthListResponse;
    type Future = BoxFuture<Response<HealthListResponse>, Status>;

    fn call(&mut self, _request: Request<HealthListRequest>) -> Self::Future {
        let statuses = self.0.statuses();
        Box::pin(async move {
            if statuses.len() > MAX_LISTED {
                return Err(Status::resource_exhausted(format!(
                    "{} services is more than List returns ({MAX_LISTED})",
                    statuses.len()
                )));
            }
            Ok(Response::new(HealthListResponse {
                statuses: statuses
                    .into_iter()
                    .map(|(name, status)| (name, response(status)))
                    .collect(),
            }))
        })
    }
}

/// Call `List` on `channel` (tonic-health's client has no List method).
pub async fn list<T>(channel: T) -> Result<HealthListResponse, Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as tonic::codegen::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut client = tonic::client::Grpc::new(channel);
    client
        .ready()
        .await
        .map_err(|error| Status::unavailable(format!("not ready: {}", error.into())))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(PATH);
    client
        .unary(
            Request::new(HealthListRequest {}),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await
        .map(Response::into_inner)
}
