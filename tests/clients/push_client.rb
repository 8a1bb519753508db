# A push client written the way push-exchanger talks to WebORCA's push API:
# the websocket library (what websocket-client-simple is built on) over an
# OpenSSL socket with the client certificate from PEM files (push-exchanger's
# config.yml :cert, :cert_key, :ca_cert, :passphrase), the headers
# X-GINBEE-TENANT-ID and Authorization: Basic, no subprotocol. It obeys the
# commands of tests/py/push_client.py on stdin (subscribe, recv, wait_close,
# close) and reports the same JSON lines on stdout.
#
#   ruby push_client.rb URL CA CRT KEY [TENANT]
require "json"
require "openssl"
require "securerandom"
require "socket"
require "timeout"
require "uri"
begin
  require "websocket"
rescue LoadError
  abort "push_client.rb: the websocket library is missing (Debian: ruby-websocket); " \
        "run `scripts/test --setup-only` as root"
end

url, ca, crt, key, tenant = ARGV
uri = URI(url)
$out = Mutex.new
def report(obj)
  $out.synchronize { $stdout.puts(JSON.generate(obj)); $stdout.flush }
end

ctx = OpenSSL::SSL::SSLContext.new
ctx.set_params(verify_mode: OpenSSL::SSL::VERIFY_PEER)
ctx.ca_file = ca
ctx.cert = OpenSSL::X509::Certificate.new(File.read(crt))
ctx.key = OpenSSL::PKey.read(File.read(key), nil)
tcp = Timeout.timeout(15) { TCPSocket.new(uri.host, uri.port) }
ssl = OpenSSL::SSL::SSLSocket.new(tcp, ctx)
ssl.hostname = uri.host
ssl.sync_close = true
Timeout.timeout(15) { ssl.connect }
ssl.post_connection_check(uri.host)

auth = ["ormaster:ormaster123"].pack("m0")
hs = WebSocket::Handshake::Client.new(
  url: url, headers: { "X-GINBEE-TENANT-ID" => tenant || "1", "Authorization" => "Basic #{auth}" }
)
ssl.write(hs.to_s)
raw = +""
Timeout.timeout(15) do
  until hs.finished?
    chunk = ssl.readpartial(4096)
    raw << chunk
    hs << chunk
  end
end
status = raw[/\AHTTP\/1\.1 (\d+)/, 1].to_i
unless hs.valid?
  report("error" => "handshake refused: #{raw.lines.first.to_s.strip}", "status" => status)
  exit 1
end
subprotocol = raw[/^sec-websocket-protocol:\s*(\S+)/i, 1]
report("connected" => { "status" => status, "subprotocol" => subprotocol })
version = hs.version
send_frame = lambda do |type, data, code = nil|
  frame = WebSocket::Frame::Outgoing::Client.new(version: version, data: data, type: type, code: code)
  $out.synchronize { ssl.write(frame.to_s) }
end

# the reader: every text message is reported, a Close frame is answered and
# reported, a connection that ends without one is reported as not clean
closed = Queue.new
Thread.new do
  incoming = WebSocket::Frame::Incoming::Client.new(version: version)
  incoming << hs.leftovers.to_s
  clean = nil
  begin
    loop do
      while (f = incoming.next)
        case f.type
        when :text then report("recv" => f.data.force_encoding("UTF-8"))
        when :ping then send_frame.call(:pong, f.data)
        when :close
          clean = { "clean" => true, "close_frame_received" => true, "code" => f.code, "reason" => f.data }
          begin
            send_frame.call(:close, "", f.code || 1000)
          rescue IOError, OpenSSL::SSL::SSLError, Errno::EPIPE
          end
          raise StopIteration
        end
      end
      incoming << ssl.readpartial(4096)
    end
  rescue StopIteration
  rescue EOFError, IOError, OpenSSL::SSL::SSLError, SystemCallError => e
    clean ||= { "clean" => false, "close_frame_received" => false, "code" => nil, "detail" => e.class.name }
  end
  report("closed" => clean)
  closed << clean
end

while (line = $stdin.gets)
  case line.strip
  when "subscribe"
    msg = { "command" => "subscribe", "req.id" => SecureRandom.uuid, "event" => "*" }
    report("sent" => msg) # first: the answers may arrive before write returns
    send_frame.call(:text, JSON.generate(msg))
  when "wait_close"
    Timeout.timeout(30) { closed.pop }
    exit 0
  when "close"
    send_frame.call(:close, "", 1000)
    Timeout.timeout(15) { closed.pop }
    ssl.close
    exit 0
  end
end
