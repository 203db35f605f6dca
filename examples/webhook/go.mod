module github.com/raystack/salt/examples/webhook

go 1.24

replace github.com/raystack/salt => ../..

require (
	github.com/raystack/salt v0.0.0-00010101000000-000000000000
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1
	go.uber.org/goleak v1.3.0
)

require github.com/google/uuid v1.6.0 // indirect
