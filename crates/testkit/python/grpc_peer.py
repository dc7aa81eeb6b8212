"""Real gRPC health peers for vitals' tests: grpcio and grpcio-health-checking from PyPI.
(Not named grpc_health.py: that would shadow the package it imports.)

    grpc_peer.py check ADDRESS SERVICE           prints SERVING, NOT_SERVING, … or "error CODE"
    grpc_peer.py watch ADDRESS SERVICE           prints each status as it arrives, then
                                                   "error CODE" or "end" when the call ends
    grpc_peer.py list ADDRESS                    prints {"name": "STATUS", …} as JSON
    grpc_peer.py serve ADDRESS [--tls CERT KEY] NAME=STATUS…
                                                   a grpc.health.v1 server (grpc's own
                                                   HealthServicer); prints "listening on
                                                   HOST:PORT"; SIGUSR1 flips every name
                                                   between SERVING and NOT_SERVING

vitals' tests start it through vitals_testkit (`grpc_python`); scripts/test installs the
packages into a virtual environment. It is a peer to test against, not part of vitals.
"""

import json
import signal
import sys
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

STATUS = health_pb2.HealthCheckResponse.ServingStatus


def name(status):
    return STATUS.Name(status)


def stub(address):
    return health_pb2_grpc.HealthStub(grpc.insecure_channel(address))


def check(address, service):
    try:
        response = stub(address).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        print(name(response.status), flush=True)
    except grpc.RpcError as error:
        print("error", error.code().name, flush=True)


def watch(address, service):
    try:
        for response in stub(address).Watch(health_pb2.HealthCheckRequest(service=service)):
            print(name(response.status), flush=True)
        print("end", flush=True)
    except grpc.RpcError as error:
        print("error", error.code().name, flush=True)


def list_(address):
    try:
        response = stub(address).List(health_pb2.HealthListRequest(), timeout=10)
    except grpc.RpcError as error:
        print("error", error.code().name, flush=True)
        return
    statuses = {key: name(value.status) for key, value in response.statuses.items()}
    print(json.dumps(statuses, sort_keys=True), flush=True)


def serve(address, rest):
    tls = None
    if rest[:1] == ["--tls"]:
        tls, rest = (rest[1], rest[2]), rest[3:]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    statuses = {}
    for pair in rest:
        key, _, value = pair.partition("=")
        statuses[key] = STATUS.Value(value)
        servicer.set(key, statuses[key])
    if tls:
        with open(tls[0], "rb") as cert, open(tls[1], "rb") as key:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        sys.exit(f"cannot listen on {address}")

    def flip(*_):
        for key, value in statuses.items():
            statuses[key] = STATUS.Value("NOT_SERVING" if value == STATUS.Value("SERVING") else "SERVING")
            servicer.set(key, statuses[key])
        print("flipped", json.dumps({k: name(v) for k, v in statuses.items()}, sort_keys=True), flush=True)

    signal.signal(signal.SIGUSR1, flip)
    server.start()
    print(f"listening on {address.rsplit(':', 1)[0]}:{port}", flush=True)
    while True:
        time.sleep(3600)


def main(argv):
    command, address, rest = argv[1], argv[2], argv[3:]
    if command == "check":
        check(address, rest[0])
    elif command == "watch":
        watch(address, rest[0])
    elif command == "list":
        list_(address)
    elif command == "serve":
        serve(address, rest)
    else:
        sys.exit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv)
