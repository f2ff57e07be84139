#include "server/http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <mutex>

#include "server/controlnet_api.h"
#include "server/web_page.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/json.h"

namespace diffuse::server {

using nlohmann::json;

namespace {

const char* status_text(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 422: return "InvalidParameter";
    case 500: return "Internal Server Error";
    default: return "Error";
  }
}

void send_json(httplib::Response& response, int status, const json& body) {
  response.status = status;
  response.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& response, int status, const std::string& field, const std::string& detail) {
  json body = {{"error", status_text(status)}, {"detail", detail}};
  if (!field.empty()) body["field"] = field;
  send_json(response, status, body);
}

// The request body as JSON; answers 400 and returns nullopt when it is not.
std::optional<json> body_of(const httplib::Request& request, httplib::Response& response) {
  // Parsing (and later copying) recurses once per level: a body of a million '[' must not reach it.
  if (json_nests_deeper_than(request.body)) {
    send_error(response, 400, "", "malformed JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    return std::nullopt;
  }
  try {
    return json::parse(request.body);
  } catch (const json::exception& error) {
    send_error(response, 400, "", std::string("malformed JSON: ") + error.what());
    return std::nullopt;
  }
}

json status_json(const std::string& id, const JobStatus& status, bool with_preview) {
  json body = {{"id", id}, {"state", job_state_name(status.state)}};
  if (status.state == JobState::Queued) body["ahead"] = status.ahead;
  if (!status.worker.empty()) body["worker"] = status.worker;
  body["attempts"] = status.attempts;
  if (!status.progress.is_null()) body["progress"] = status.progress;
  if (with_preview && !status.preview_png.empty()) body["preview"] = base64_encode(status.preview_png);
  if (status.finished() && !status.result.is_null()) body["result"] = status.result;
  if (status.state == JobState::Failed) {
    body["error"] = status.error;
    body["error_status"] = status.error_status;
  }
  return body;
}

}  // namespace

struct HttpFront::Impl {
  JobQueue& queue;
  FrontOptions options;
  httplib::Server server;
  std::mutex options_mutex;
  json settings;  // /sdapi/v1/options
  int port = 0;
  int listening_socket = -1;

  Impl(JobQueue& q, FrontOptions o) : queue(q), options(std::move(o)) {
    settings = {{"sd_model_checkpoint", options.model_name}, {"CLIP_stop_at_last_layers", 1}, {"samples_format", "png"}};
    routes();
  }

  // Checks what can be checked without the model, then queues the job with the server's options
  // (they travel with it: its worker may be on another machine).
  std::optional<std::string> submit(const std::string& kind, json payload, httplib::Response& response) {
    if (payload.is_object()) {
      std::lock_guard lock(options_mutex);
      payload[kServerDefaults] = {{"CLIP_stop_at_last_layers", settings.value("CLIP_stop_at_last_layers", 1)}};
    }
    try {
      if (options.check) options.check(payload, kind == "img2img");
    } catch (const InvalidParameter& error) {
      send_error(response, 422, error.parameter(), error.what());
      return std::nullopt;
    } catch (const Error& error) {
      send_error(response, 422, "", error.what());
      return std::nullopt;
    }
    return queue.submit(kind, payload);
  }

  void synchronous(const std::string& kind, const httplib::Request& request, httplib::Response& response) {
    auto payload = body_of(request, response);
    if (!payload) return;
    const auto id = submit(kind, *payload, response);
    if (!id) return;
    JobStatus status;
    do {
      status = queue.wait(*id, std::chrono::seconds(1));
    } while (!status.finished() && status.state != JobState::Unknown);
    if (status.state == JobState::Failed) {
      send_error(response, status.error_status ? status.error_status : 500, "", status.error);
    } else if (status.state == JobState::Unknown) {
      send_error(response, 500, "", "the job was lost");
    } else {
      send_json(response, 200, status.result);
    }
  }

  // /sdapi/v1/progress: the running job's share done, ETA and (unless skipped) its latest preview.
  void progress(const httplib::Request& request, httplib::Response& response) {
    const bool skip_image = request.get_param_value("skip_current_image") == "true";
    json body = {{"progress", 0.0}, {"eta_relative", 0.0}, {"current_image", nullptr}, {"textinfo", nullptr}};
    json state = {{"skipped", false}, {"interrupted", false}, {"job", ""}, {"job_count", queue.queued()},
                  {"job_no", 0}, {"sampling_step", 0}, {"sampling_steps", 0}};
    if (const auto id = queue.running()) {
      const auto status = queue.status(*id);
      state["job"] = *id;
      state["job_count"] = queue.queued() + 1;
      state["interrupted"] = queue.interrupted(*id);
      if (status.progress.is_object()) {
        body["progress"] = status.progress.value("fraction", 0.0);
        body["eta_relative"] = std::max(0.0, status.progress.value("eta_seconds", 0.0));
        state["sampling_step"] = status.progress.value("step", 0);
        state["sampling_steps"] = status.progress.value("steps", 0);
        state["job_no"] = status.progress.value("image", 0);
      }
      if (!skip_image && !status.preview_png.empty()) body["current_image"] = base64_encode(status.preview_png);
    }
    body["state"] = state;
    send_json(response, 200, body);
  }

  // /sdapi/v1/options: every key checked before any is set.
  void set_options(const httplib::Request& request, httplib::Response& response) {
    const auto body = body_of(request, response);
    if (!body) return;
    if (!body->is_object()) return send_error(response, 422, "body", "body: must be a JSON object");
    std::lock_guard lock(options_mutex);
    for (const auto& [key, value] : body->items()) {
      if (key == "sd_model_checkpoint" && value != options.model_name) {
        return send_error(response, 422, key, key + ": this server has " + options.model_name +
                                                  " loaded; start another diffuse serve for " + value.dump());
      }
      if (key == "CLIP_stop_at_last_layers" && (!value.is_number_integer() || value.get<int>() < 1 || value.get<int>() > 12)) {
        return send_error(response, 422, key, key + ": must be a whole number 1..12");
      }
    }
    for (const auto& [key, value] : body->items()) settings[key] = value;
    send_json(response, 200, nullptr);
  }

  void routes() {
    // SO_REUSEADDR alone: a restart may take a port still in TIME_WAIT, but a second server on a port in
    // use fails (httplib's default, SO_REUSEPORT, lets both listen and splits the clients between them).
    server.set_socket_options([this](socket_t socket) {
      const int yes = 1;
      ::setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listening_socket = socket;
    });
    server.set_payload_max_length(options.limits.max_request_bytes);
    server.new_task_queue = [] { return new httplib::ThreadPool(64); };
    server.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
      std::string what = "internal error";
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      send_error(response, 500, "", what);
    });
    server.set_error_handler([](const httplib::Request& request, httplib::Response& response) {
      if (!response.body.empty()) return;
      send_error(response, response.status, "", request.method + " " + request.path + ": " +
                                                      status_text(response.status));
    });

    server.Get("/", [](const httplib::Request&, httplib::Response& response) {
      response.set_content(web_page(), "text/html; charset=utf-8");
    });
    a1111_routes();
    controlnet_routes();
    diffuse_routes();
  }

  // AUTOMATIC1111's API, as far as one loaded model goes.
  void a1111_routes() {
    server.Post("/sdapi/v1/txt2img", [this](const httplib::Request& rq, httplib::Response& rs) { synchronous("txt2img", rq, rs); });
    server.Post("/sdapi/v1/img2img", [this](const httplib::Request& rq, httplib::Response& rs) { synchronous("img2img", rq, rs); });
    server.Get("/sdapi/v1/progress", [this](const httplib::Request& rq, httplib::Response& rs) { progress(rq, rs); });
    server.Post("/sdapi/v1/interrupt", [this](const httplib::Request&, httplib::Response& response) {
      if (const auto id = queue.running()) queue.interrupt(*id);
      send_json(response, 200, json::object());
    });
    server.Post("/sdapi/v1/skip", [this](const httplib::Request&, httplib::Response& response) {
      if (const auto id = queue.running()) queue.interrupt(*id);
      send_json(response, 200, json::object());
    });
    server.Get("/sdapi/v1/samplers", [](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, a1111_samplers());
    });
    server.Get("/sdapi/v1/sd-models", [this](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200,
                json::array({{{"title", options.model_name},
                              {"model_name", options.model_name},
                              {"hash", nullptr},
                              {"sha256", nullptr},
                              {"filename", options.model_path},
                              {"config", nullptr}}}));
    });
    server.Get("/sdapi/v1/options", [this](const httplib::Request&, httplib::Response& response) {
      std::lock_guard lock(options_mutex);
      send_json(response, 200, settings);
    });
    server.Post("/sdapi/v1/options", [this](const httplib::Request& rq, httplib::Response& rs) { set_options(rq, rs); });
  }

  // sd-webui-controlnet's API beside the units in txt2img / img2img payloads. detect needs no model:
  // it is answered here, not queued.
  void controlnet_routes() {
    server.Get("/controlnet/model_list", [this](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, controlnet_model_list(options.controlnet_dirs));
    });
    server.Get("/controlnet/module_list", [](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, controlnet_module_list());
    });
    server.Post("/controlnet/detect", [](const httplib::Request& request, httplib::Response& response) {
      const auto body = body_of(request, response);
      if (!body) return;
      try {
        send_json(response, 200, controlnet_detect(*body));
      } catch (const InvalidParameter& error) {
        send_error(response, 422, error.parameter(), error.what());
      } catch (const Error& error) {
        send_error(response, 422, "", error.what());
      }
    });
  }

  // diffuse's own job API: submit, poll (with a preview), interrupt.
  void diffuse_routes() {
    server.Get("/diffuse/v1/presets", [](const httplib::Request&, httplib::Response& response) {
      send_json(response, 200, diffuse_presets());
    });
    server.Post("/diffuse/v1/jobs", [this](const httplib::Request& request, httplib::Response& response) {
      auto body = body_of(request, response);
      if (!body) return;
      if (!body->is_object()) return send_error(response, 422, "body", "body: must be a JSON object");
      const std::string kind = body->value("kind", "txt2img");
      if (kind != "txt2img" && kind != "img2img") return send_error(response, 422, "kind", "kind: txt2img or img2img");
      body->erase("kind");
      if (const auto id = submit(kind, *body, response)) send_json(response, 202, {{"id", *id}});
    });
    server.Get(R"(/diffuse/v1/jobs/([A-Za-z0-9_.:-]+))", [this](const httplib::Request& request, httplib::Response& response) {
      const std::string id = request.matches[1];
      const auto status = queue.status(id);
      if (status.state == JobState::Unknown) return send_error(response, 404, "", "no job " + id);
      send_json(response, 200, status_json(id, status, request.get_param_value("preview") != "false"));
    });
    server.Post(R"(/diffuse/v1/jobs/([A-Za-z0-9_.:-]+)/interrupt)", [this](const httplib::Request& request, httplib::Response& response) {
      const std::string id = request.matches[1];
      send_json(response, queue.interrupt(id) ? 200 : 404, {{"id", id}});
    });
  }
};

HttpFront::HttpFront(JobQueue& queue, FrontOptions options) : impl_(std::make_unique<Impl>(queue, std::move(options))) {}
HttpFront::~HttpFront() { stop(); }

int HttpFront::bind() {
  const auto& o = impl_->options;
  if (o.port == 0) {
    impl_->port = impl_->server.bind_to_any_port(o.host.c_str());
  } else {
    impl_->port = impl_->server.bind_to_port(o.host.c_str(), o.port) ? o.port : -1;
  }
  if (impl_->port <= 0) throw Error(o.host + ":" + std::to_string(o.port) + ": cannot listen (in use, or not this machine's address)");
  // Debian's httplib is built with a listen backlog of 5: clients connecting while a busy machine is slow to
  // accept overflow it, and the kernel drops their handshakes, retried seconds later or, past the SYN
  // cookies, lost (requests that never got an answer under load). Listening again only raises the backlog,
  // to the kernel's own limit (net.core.somaxconn).
  ::listen(impl_->listening_socket, SOMAXCONN);
  return impl_->port;
}

void HttpFront::serve() { impl_->server.listen_after_bind(); }

void HttpFront::stop() {
  if (impl_ && impl_->server.is_running()) impl_->server.stop();
}

}  // namespace diffuse::server
