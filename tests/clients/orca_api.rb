# An ORCA API client written the way the orca-api gem sets up Net::HTTP:
# use_ssl, cert and key from orca-catool's PEM files (or from the .p12
# through OpenSSL::PKCS12), ca_file = the clinic's ca.crt, Basic auth, a JSON
# body. Reports one JSON object per request on stdout; the Rust tests drive it.
#
#   ruby orca_api.rb URL CA pem CRT KEY [TLS] [CONNECTIONS]
#   ruby orca_api.rb URL CA p12 P12 PASS_FILE [TLS] [CONNECTIONS]
#
# TLS is TLS1_2, TLS1_3 or any; CONNECTIONS (default 1) new connections are
# made one after another on the same Net::HTTP object, which offers the last
# TLS session again, as Net::HTTP does. With three or more, it waits for a
# line on stdin before the last one (the test changes the server meanwhile).
# CONNECTIONS "keepalive": two requests on one connection, a line read from
# stdin between them.
require "json"
require "net/http"
require "openssl"

url, ca, kind, a, b, tls, conns = ARGV
uri = URI(url)
http = Net::HTTP.new(uri.host, uri.port)
http.use_ssl = true
http.verify_mode = OpenSSL::SSL::VERIFY_PEER
http.ca_file = ca
case kind
when "pem"
  http.cert = OpenSSL::X509::Certificate.new(File.read(a))
  http.key = OpenSSL::PKey.read(File.read(b))
when "p12"
  p12 = OpenSSL::PKCS12.new(File.binread(a), File.read(b).strip)
  http.cert = p12.certificate
  http.key = p12.key
  http.extra_chain_cert = p12.ca_certs
else
  abort "unknown certificate kind #{kind}"
end
if tls && tls != "any"
  http.min_version = tls.to_sym
  http.max_version = tls.to_sym
end
http.open_timeout = 15
http.read_timeout = 30

body = JSON.generate(
  "patientlst2req" => { "Patient_ID_Information" => [{ "Patient_ID" => "00001" }], "WholeName" => "日医　花子" }
)
keepalive = conns == "keepalive"
n = keepalive ? 1 : (conns || "1").to_i
n.times do |i|
  $stdin.gets if n >= 3 && i == n - 1
  http.start do |h|
    (keepalive ? 2 : 1).times do |j|
      $stdin.gets if j == 1
      ssl = h.instance_variable_get(:@socket).io
      query = "#{uri.query ? '&' : '?'}conn=#{i}#{keepalive ? "&req=#{j}" : ''}"
      req = Net::HTTP::Post.new("#{uri.request_uri}#{query}")
      req.basic_auth("ormaster", "ormaster123")
      req["Content-Type"] = "application/json"
      req.body = body
      # read before the answer: the proxy closes a refused connection after its page
      local_port = ssl.to_io.local_address.ip_port
      res = h.request(req)
      puts JSON.generate(
        "status" => res.code.to_i,
        "cert_error" => res["x-client-cert-error"],
        "body" => res.body.force_encoding("UTF-8"),
        "sent_sha256" => OpenSSL::Digest::SHA256.hexdigest(body),
        "local_port" => local_port,
        "tls" => { "protocol" => ssl.ssl_version, "cipher" => ssl.cipher[0], "resumed" => ssl.session_reused? }
      )
      $stdout.flush
    end
  end
end
