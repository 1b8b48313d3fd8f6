/*
 * The benchmark's reference producer on gRPC C++: CreateProducer, then SendMessage calls with
 * a window of calls in flight (async CompletionQueue API), measuring rate and CPU per message.
 */
#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>

#include <getopt.h>
#include <sys/resource.h>

#include "danube/DanubeApi.grpc.pb.h"

namespace
{

/* Same per-call deadline as our client's SendMessage, so both pay for a timer. */
constexpr int kSendDeadlineS = 30;
constexpr int kControlDeadlineS = 10;

struct Options {
	std::string url = "http://127.0.0.1:6650";
	size_t window = 1;
	size_t messages = 10000;
	size_t warmup = 0;
	size_t payload_size = 1024;
	std::string topic = "/default/bench";
};

struct Call {
	grpc::ClientContext ctx;
	danube::MessageResponse resp;
	grpc::Status status;
	std::unique_ptr<grpc::ClientAsyncResponseReader<danube::MessageResponse>> rpc;
	uint64_t request_id = 0;
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

uint64_t wall_ms()
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

class Sender
{
      public:
	Sender(danube::ProducerService::Stub *stub, danube::StreamMessage *req, size_t window)
	    : stub_(stub), req_(req), window_(window)
	{
	}

	/* Sends count messages keeping window calls in flight; false (and a message) on error. */
	bool run(size_t count)
	{
		size_t started = 0, done = 0, inflight = 0;

		while (done < count) {
			while (inflight < window_ && started < count) {
				start();
				started++;
				inflight++;
			}
			void *tag;
			bool ok;
			if (!cq_.Next(&tag, &ok)) {
				std::fprintf(stderr, "peer_producer: completion queue shut down\n");
				return false;
			}
			std::unique_ptr<Call> call(static_cast<Call *>(tag));
			inflight--;
			done++;
			if (!ok || !call->status.ok()) {
				std::fprintf(stderr,
					     "peer_producer: SendMessage failed: %s (code %d)\n",
					     call->status.error_message().c_str(),
					     static_cast<int>(call->status.error_code()));
				return false;
			}
			if (call->resp.request_id() != call->request_id) {
				std::fprintf(
					stderr,
					"peer_producer: ack for request %llu, expected %llu\n",
					static_cast<unsigned long long>(call->resp.request_id()),
					static_cast<unsigned long long>(call->request_id));
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
			delete static_cast<Call *>(tag);
	}

      private:
	void start()
	{
		Call *call = new Call;
		call->request_id = ++next_id_;
		call->ctx.set_deadline(std::chrono::system_clock::now() +
				       std::chrono::seconds(kSendDeadlineS));
		/* The request is serialized here, so req_ can change for the next call. */
		req_->set_request_id(call->request_id);
		req_->set_publish_time(wall_ms());
		call->rpc = stub_->AsyncSendMessage(&call->ctx, *req_, &cq_);
		call->rpc->Finish(&call->resp, &call->status, call);
	}

	danube::ProducerService::Stub *stub_;
	danube::StreamMessage *req_;
	size_t window_;
	grpc::CompletionQueue cq_;
	uint64_t next_id_ = 0;
};

void usage(FILE *f)
{
	std::fprintf(f, "usage: peer_producer -u URL [-w WINDOW] [-n MESSAGES] [-W WARMUP] "
			"[-s PAYLOAD_BYTES] [-t TOPIC]\n"
			"Sends MESSAGES (after WARMUP unmeasured ones) with WINDOW calls in "
			"flight and prints one RESULT line.\n");
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

	while ((c = getopt(argc, argv, "u:w:n:W:s:t:")) != -1) {
		bool ok = true;
		switch (c) {
		case 'u':
			o->url = optarg;
			break;
		case 'w':
			ok = parse_size(optarg, &o->window) && o->window > 0;
			break;
		case 'n':
			ok = parse_size(optarg, &o->messages) && o->messages > 0;
			break;
		case 'W':
			ok = parse_size(optarg, &o->warmup);
			break;
		case 's':
			ok = parse_size(optarg, &o->payload_size);
			break;
		case 't':
			o->topic = optarg;
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
	std::unique_ptr<danube::ProducerService::Stub> stub =
		danube::ProducerService::NewStub(channel);

	danube::ProducerRequest preq;
	danube::ProducerResponse presp;
	grpc::ClientContext pctx;
	preq.set_request_id(1);
	preq.set_producer_name("grpc-cpp-bench");
	preq.set_topic_name(o.topic);
	preq.set_dispatch_strategy(danube::NonReliable);
	pctx.set_deadline(std::chrono::system_clock::now() +
			  std::chrono::seconds(kControlDeadlineS));
	grpc::Status st = stub->CreateProducer(&pctx, preq, &presp);
	if (!st.ok()) {
		std::fprintf(stderr, "peer_producer: CreateProducer on %s failed: %s (code %d)\n",
			     o.url.c_str(), st.error_message().c_str(),
			     static_cast<int>(st.error_code()));
		return 69;
	}

	/* The same fields our producer fills (see danube-protocol.md, section 3). */
	danube::StreamMessage req;
	req.mutable_msg_id()->set_producer_id(presp.producer_id());
	req.mutable_msg_id()->set_topic_name(o.topic);
	req.mutable_msg_id()->set_broker_addr(o.url);
	req.mutable_msg_id()->set_topic_offset(0);
	req.set_producer_name(preq.producer_name());
	std::string payload(o.payload_size, '\0');
	for (size_t i = 0; i < payload.size(); i++)
		payload[i] = static_cast<char>('a' + i % 26);
	req.set_payload(payload);

	Sender sender(stub.get(), &req, o.window);
	if (o.warmup > 0 && !sender.run(o.warmup)) {
		sender.shutdown();
		return 1;
	}
	double t0 = mono_s(), c0 = cpu_s(), s0 = sys_s();
	bool ok = sender.run(o.messages);
	double t1 = mono_s(), c1 = cpu_s(), s1 = sys_s();
	sender.shutdown();
	if (!ok)
		return 1;

	double wall = t1 - t0, cpu = c1 - c0, sys = s1 - s0;
	std::printf(
		"RESULT client=grpc-cpp role=producer window=%zu size=%zu msgs=%zu "
		"wall_s=%.3f cpu_s=%.3f msgs_per_s=%.0f cpu_us_per_msg=%.2f sys_us_per_msg=%.2f\n",
		o.window, o.payload_size, o.messages, wall, cpu,
		static_cast<double>(o.messages) / wall, cpu * 1e6 / static_cast<double>(o.messages),
		sys * 1e6 / static_cast<double>(o.messages));
	return 0;
}
