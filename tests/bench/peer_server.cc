/*
 * The benchmark's reference peer on gRPC C++: a minimal Danube broker that acks every
 * SendMessage at once and streams preloaded messages, so both clients face the same server.
 */
#include <grpcpp/grpcpp.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <unistd.h>
#include <vector>

#include <getopt.h>
#include <sys/prctl.h>

#include "danube/DanubeApi.grpc.pb.h"

namespace
{

/* Fixed ids: the peer serves one producer and one consumer at a time. */
constexpr uint64_t kProducerId = 4242;
constexpr uint64_t kConsumerId = 4343;

struct Options {
	size_t messages = 100000;
	size_t payload_size = 1024;
	std::string topic = "/default/bench";
};

grpc::ServerUnaryReactor *finish_ok(grpc::CallbackServerContext *ctx)
{
	grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
	r->Finish(grpc::Status::OK);
	return r;
}

grpc::ServerUnaryReactor *finish_error(grpc::CallbackServerContext *ctx, grpc::StatusCode code,
				       const std::string &message)
{
	grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
	r->Finish(grpc::Status(code, message));
	return r;
}

class Producer final : public danube::ProducerService::CallbackService
{
      public:
	grpc::ServerUnaryReactor *CreateProducer(grpc::CallbackServerContext *ctx,
						 const danube::ProducerRequest *req,
						 danube::ProducerResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		resp->set_producer_id(kProducerId);
		resp->set_producer_name(req->producer_name());
		return finish_ok(ctx);
	}

	/* The real broker refuses an unknown producer id: so do we, to keep both clients honest. */
	grpc::ServerUnaryReactor *SendMessage(grpc::CallbackServerContext *ctx,
					      const danube::StreamMessage *req,
					      danube::MessageResponse *resp) override
	{
		if (!req->has_msg_id() || req->msg_id().producer_id() != kProducerId)
			return finish_error(ctx, grpc::StatusCode::NOT_FOUND,
					    "The producer with id " +
						    std::to_string(req->msg_id().producer_id()) +
						    " does not exist");
		resp->set_request_id(req->request_id());
		return finish_ok(ctx);
	}
};

class Discovery final : public danube::Discovery::CallbackService
{
      public:
	explicit Discovery(const std::string *url) : url_(url)
	{
	}

	grpc::ServerUnaryReactor *TopicLookup(grpc::CallbackServerContext *ctx,
					      const danube::TopicLookupRequest *req,
					      danube::TopicLookupResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		resp->set_response_type(danube::TopicLookupResponse::Connect);
		resp->set_connect_url(*url_);
		resp->set_broker_url(*url_);
		resp->set_proxy(false);
		return finish_ok(ctx);
	}

	grpc::ServerUnaryReactor *TopicPartitions(grpc::CallbackServerContext *ctx,
						  const danube::TopicLookupRequest *req,
						  danube::TopicPartitionsResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		resp->add_partitions(req->topic());
		return finish_ok(ctx);
	}

      private:
	const std::string *url_;
};

/* Writes the preloaded messages one after the other, each as soon as the last is taken. */
class Streamer final : public grpc::ServerWriteReactor<danube::StreamMessage>
{
      public:
	explicit Streamer(const std::vector<danube::StreamMessage> *msgs) : msgs_(msgs)
	{
		next();
	}

	void OnWriteDone(bool ok) override
	{
		if (!ok) {
			Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
			return;
		}
		next();
	}

	void OnDone() override
	{
		delete this;
	}

      private:
	void next()
	{
		if (i_ == msgs_->size()) {
			Finish(grpc::Status::OK);
			return;
		}
		StartWrite(&(*msgs_)[i_++]);
	}

	const std::vector<danube::StreamMessage> *msgs_;
	size_t i_ = 0;
};

class Consumer final : public danube::ConsumerService::CallbackService
{
      public:
	explicit Consumer(const std::vector<danube::StreamMessage> *msgs) : msgs_(msgs)
	{
	}

	grpc::ServerUnaryReactor *Subscribe(grpc::CallbackServerContext *ctx,
					    const danube::ConsumerRequest *req,
					    danube::ConsumerResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		resp->set_consumer_id(kConsumerId);
		resp->set_consumer_name(req->consumer_name());
		return finish_ok(ctx);
	}

	grpc::ServerWriteReactor<danube::StreamMessage> *
	ReceiveMessages(grpc::CallbackServerContext *ctx,
			const danube::ReceiveRequest *req) override
	{
		if (req->consumer_id() != kConsumerId) {
			auto *r = new Refused();
			r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
					       "The consumer with the id " +
						       std::to_string(req->consumer_id()) +
						       " does not exist"));
			return r;
		}
		return new Streamer(msgs_);
	}

	grpc::ServerUnaryReactor *Ack(grpc::CallbackServerContext *ctx,
				      const danube::AckRequest *req,
				      danube::AckResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		return finish_ok(ctx);
	}

	grpc::ServerUnaryReactor *Nack(grpc::CallbackServerContext *ctx,
				       const danube::NackRequest *req,
				       danube::NackResponse *resp) override
	{
		resp->set_request_id(req->request_id());
		return finish_ok(ctx);
	}

      private:
	class Refused final : public grpc::ServerWriteReactor<danube::StreamMessage>
	{
		void OnDone() override
		{
			delete this;
		}
	};

	const std::vector<danube::StreamMessage> *msgs_;
};

class Health final : public danube::HealthCheck::CallbackService
{
      public:
	grpc::ServerUnaryReactor *HealthCheck(grpc::CallbackServerContext *ctx,
					      const danube::HealthCheckRequest *req,
					      danube::HealthCheckResponse *resp) override
	{
		resp->set_status(danube::HealthCheckResponse::OK);
		return finish_ok(ctx);
	}
};

std::vector<danube::StreamMessage> preload(const Options &o, const std::string &url)
{
	std::vector<danube::StreamMessage> msgs(o.messages);
	std::string payload(o.payload_size, '\0');
	struct timespec ts;

	for (size_t i = 0; i < payload.size(); i++)
		payload[i] = static_cast<char>('a' + i % 26);
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t now_ms = static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
	for (size_t i = 0; i < msgs.size(); i++) {
		danube::StreamMessage &m = msgs[i];
		m.set_request_id(i + 1);
		m.mutable_msg_id()->set_producer_id(kProducerId);
		m.mutable_msg_id()->set_topic_name(o.topic);
		m.mutable_msg_id()->set_broker_addr(url);
		m.mutable_msg_id()->set_topic_offset(i);
		m.set_payload(payload);
		m.set_publish_time(now_ms);
		m.set_producer_name("bench-peer");
	}
	return msgs;
}

void usage(FILE *f)
{
	std::fprintf(f, "usage: peer_server [-n MESSAGES] [-s PAYLOAD_BYTES] [-t TOPIC]\n"
			"Serves the Danube API on a free port of 127.0.0.1 and prints the port.\n"
			"Each ReceiveMessages stream carries MESSAGES preloaded messages, then "
			"ends OK.\n");
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

} // namespace

int main(int argc, char **argv)
{
	Options o;
	int c;

	while ((c = getopt(argc, argv, "n:s:t:h")) != -1) {
		switch (c) {
		case 'n':
			if (!parse_size(optarg, &o.messages)) {
				usage(stderr);
				return 64;
			}
			break;
		case 's':
			if (!parse_size(optarg, &o.payload_size)) {
				usage(stderr);
				return 64;
			}
			break;
		case 't':
			o.topic = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}

	/* Die with the bench script, and take the stop signals in main only (gRPC has threads). */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) {
		std::perror("peer_server: prctl");
		return 1;
	}
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	if (pthread_sigmask(SIG_BLOCK, &stop, nullptr) != 0) {
		std::fprintf(stderr, "peer_server: cannot block signals\n");
		return 1;
	}

	/*
	 * The URL and the messages depend on the port, known only once bound: both are set
	 * before the port is printed, so no client can ask for them earlier.
	 */
	int port = 0;
	std::string url;
	std::vector<danube::StreamMessage> msgs;
	Producer producer;
	Discovery discovery(&url);
	Consumer consumer(&msgs);
	Health health;
	grpc::ServerBuilder builder;
	builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
	builder.RegisterService(&producer);
	builder.RegisterService(&discovery);
	builder.RegisterService(&consumer);
	builder.RegisterService(&health);
	std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
	if (server == nullptr || port == 0) {
		std::fprintf(stderr, "peer_server: cannot listen on 127.0.0.1\n");
		return 1;
	}
	url = "http://127.0.0.1:" + std::to_string(port);
	msgs = preload(o, url);
	std::printf("%d\n", port);
	std::fflush(stdout);

	int sig = 0;
	if (sigwait(&stop, &sig) != 0) {
		std::fprintf(stderr, "peer_server: sigwait failed\n");
		return 1;
	}
	/* Streams still open are cancelled after the grace period. */
	server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
	return 0;
}
