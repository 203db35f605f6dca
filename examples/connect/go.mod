module github.com/raystack/salt/examples/connect

go 1.26.0

require (
	connectrpc.com/connect v1.21.1
	github.com/raystack/salt v0.0.0-00010101000000-000000000000
	google.golang.org/protobuf v1.36.12
)

tool (
	connectrpc.com/connect/cmd/protoc-gen-connect-go
	google.golang.org/protobuf/cmd/protoc-gen-go
)

replace github.com/raystack/salt => ../..
