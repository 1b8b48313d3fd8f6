/*
 * The benchmark's reference consumer on gRPC C++: Subscribe, then drain a ReceiveMessages
 * stream (optionally acking each message asynchronously), measuring rate and CPU per message.
 */
#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>

#include <getopt.h>
#include <sys/resource.h>

#include "danube/DanubeApi.grpc.pb.h"

namespace
{

constexpr int kControlDeadlineS = 10;
constexpr int kAckDeadlineS = 30;

struct Options {
	std::string url = "http://127.0.0.1:6650";
	size_t messages = 100000;
	size_t payload_size = 1024;
	std::string topic = "/default/bench";
	bool ack = false;
};

struct AckCall {
	grpc::ClientContext ctx;
	danube::AckResponse resp;
	grpc::Status status;
	std::unique_ptr<grpc::ClientAsyncResponseReader<danube::AckResponse>> rpc;
};

double mono_s()
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/* CPU of every thread of the process: gRPC does part of its work on its own threads. */
double cpu_s()
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/* The kernel's share of it (sockets, polling). */
double sys_s()
{
	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0.0;
	return static_cast<double>(ru.ru_stime.tv_sec) +
	       static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
}

/* Acks go out asynchronously, as our consumer sends them, and are collected as they complete. */
class Acker
{
      public:
	Acker(danube::ConsumerService::Stub *stub, std::string subscription)
	    : stub_(stub), subscription_(std::move(subscription))
	{
	}

	void send(const danube::StreamMessage &m)
	{
		AckCall *call = new AckCall;
		danube::AckRequest req;

		req.set_request_id(m.request_id());
		*req.mutable_msg_id() = m.msg_id();
		req.set_subscription_name(subscription_);
		call->ctx.set_deadline(std::chrono::system_clock::now() +
				       std::chrono::seconds(kAckDeadlineS));
		call->rpc = stub_->AsyncAck(&call->ctx, req, &cq_);
		call->rpc->Finish(&call->resp, &call->status, call);
		pending_++;
	}

	/* Collects finished acks, waiting for all of them when wait_all; false on a failed ack. */
	bool collect(bool wait_all)
	{
		while (pending_ > 0) {
			void *tag;
			bool ok;
			auto deadline = wait_all ? gpr_inf_future(GPR_CLOCK_REALTIME)
						 : gpr_time_0(GPR_CLOCK_REALTIME);
			grpc::CompletionQueue::NextStatus st = cq_.AsyncNext(&tag, &ok, deadline);
			if (st == grpc::CompletionQueue::TIMEOUT)
				return true;
			if (st == grpc::CompletionQueue::SHUTDOWN) {
				std::fprintf(stderr, "peer_consumer: completion queue shut down\n");
				return false;
			}
			std::unique_ptr<AckCall> call(static_cast<AckCall *>(tag));
			pending_--;
			if (!ok || !call->status.ok()) {
				std::fprintf(stderr, "peer_consumer: Ack failed: %s (code %d)\n",
					     call->status.error_message().c_str(),
					     static_cast<int>(call->status.error_code()));
				return false;
			}
		}
		return true;
	}

	void shutdown()
	{
		void *tag;
		bool ok;

		cq_.Shutdown();
		while (cq_.Next(&tag, &ok))
			delete static_cast<AckCall *>(tag);
	}

      private:
	danube::ConsumerService::Stub *stub_;
	std::string subscription_;
	grpc::CompletionQueue cq_;
	size_t pending_ = 0;
};

void usage(FILE *f)
{
	std::fprintf(f, "usage: peer_consumer -u URL [-n MESSAGES] [-s PAYLOAD_BYTES] [-t TOPIC] "
			"[-a]\n"
			"Drains MESSAGES from the peer's stream (offsets 0.., PAYLOAD_BYTES each), "
			"acking each with -a,\nand prints one RESULT line.\n");
}

bool parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = std::strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return false;
	*out = static_cast<size_t>(v);
	return true;
}

bool parse_args(int argc, char **argv, Options *o)
{
	int c;

	while ((c = getopt(argc, argv, "u:n:s:t:a")) != -1) {
		bool ok = true;
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'n':
			ok = parse_size(optarg, &o->messages) && o->messages > 0;
			break;
		case 's':
			ok = parse_size(optarg, &o->payload_size);
			break;
		case 't':
			o->topic = optarg;
			break;
		case 'a':
			o->ack = true;
			break;
		default:
			ok = false;
		}
		if (!ok)
			return false;
	}
	return optind == argc;
}

/* gRPC C++ takes "host:port", not a URL. */
std::string target_of(const std::string &url)
{
	const std::string scheme = "http://";
	if (url.compare(0, scheme.size(), scheme) == 0)
		return url.substr(scheme.size());
	return url;
}

/* Reads count messages from the stream, checking each; false (and a message) on error. */
bool drain(grpc::ClientReader<danube::StreamMessage> *reader, const Options &o, Acker *acker)
{
	danube::StreamMessage m;

	for (size_t i = 0; i < o.messages; i++) {
		if (!reader->Read(&m)) {
			std::fprintf(stderr,
				     "peer_consumer: stream ended after %zu of %zu messages\n", i,
				     o.messages);
			return false;
		}
		if (m.msg_id().topic_offset() != i || m.payload().size() != o.payload_size) {
			std::fprintf(stderr,
				     "peer_consumer: message %zu: offset %llu, %zu bytes; expected "
				     "offset %zu, %zu bytes\n",
				     i, static_cast<unsigned long long>(m.msg_id().topic_offset()),
				     m.payload().size(), i, o.payload_size);
			return false;
		}
		if (acker != nullptr) {
			acker->send(m);
			if (!acker->collect(false))
				return false;
		}
	}
	return acker == nullptr || acker->collect(true);
}

} // namespace

int main(int argc, char **argv)
{
	Options o;

	if (!parse_args(argc, argv, &o)) {
		usage(stderr);
		return 64;
	}

	std::shared_ptr<grpc::Channel> channel =
		grpc::CreateChannel(target_of(o.url), grpc::InsecureChannelCredentials());
	std::unique_ptr<danube::ConsumerService::Stub> stub =
		danube::ConsumerService::NewStub(channel);

	const std::string subscription = "bench";
	danube::ConsumerRequest sreq;
	danube::ConsumerResponse sresp;
	grpc::ClientContext sctx;
	sreq.set_request_id(1);
	sreq.set_topic_name(o.topic);
	sreq.set_consumer_name("grpc-cpp-bench");
	sreq.set_subscription(subscription);
	sreq.set_subscription_type(danube::ConsumerRequest::Shared);
	sctx.set_deadline(std::chrono::system_clock::now() +
			  std::chrono::seconds(kControlDeadlineS));
	grpc::Status st = stub->Subscribe(&sctx, sreq, &sresp);
	if (!st.ok()) {
		std::fprintf(stderr, "peer_consumer: Subscribe on %s failed: %s (code %d)\n",
			     o.url.c_str(), st.error_message().c_str(),
			     static_cast<int>(st.error_code()));
		return 69;
	}

	Acker acker(stub.get(), subscription);
	danube::ReceiveRequest rreq;
	grpc::ClientContext rctx;
	rreq.set_request_id(2);
	rreq.set_consumer_id(sresp.consumer_id());

	double t0 = mono_s(), c0 = cpu_s(), s0 = sys_s();
	std::unique_ptr<grpc::ClientReader<danube::StreamMessage>> reader =
		stub->ReceiveMessages(&rctx, rreq);
	bool ok = drain(reader.get(), o, o.ack ? &acker : nullptr);
	double t1 = mono_s(), c1 = cpu_s(), s1 = sys_s();

	/* The peer may have more to send: stop the stream rather than read it to its end. */
	rctx.TryCancel();
	grpc::Status rst = reader->Finish();
	acker.shutdown();
	if (!ok)
		return 1;
	if (!rst.ok() && rst.error_code() != grpc::StatusCode::CANCELLED) {
		std::fprintf(stderr, "peer_consumer: ReceiveMessages ended with %s (code %d)\n",
			     rst.error_message().c_str(), static_cast<int>(rst.error_code()));
		return 1;
	}

	double wall = t1 - t0, cpu = c1 - c0, sys = s1 - s0;
	std::printf("RESULT client=grpc-cpp role=consumer ack=%d size=%zu msgs=%zu wall_s=%.3f "
		    "cpu_s=%.3f msgs_per_s=%.0f cpu_us_per_msg=%.2f sys_us_per_msg=%.2f\n",
		    o.ack ? 1 : 0, o.payload_size, o.messages, wall, cpu,
		    static_cast<double>(o.messages) / wall,
		    cpu * 1e6 / static_cast<double>(o.messages),
		    sys * 1e6 / static_cast<double>(o.messages));
	return 0;
}
