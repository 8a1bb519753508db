// A WebORCA client written the way monsiaj and its push client use JSSE:
// java.net.http.HttpClient and java.net.http.WebSocket, the client certificate
// from orca-catool's .p12 (PKCS12 KeyStore, passphrase from the .pass file),
// the clinic's CA from ca.crt as the only trust anchor. Reports one JSON
// object per line on stdout; the Rust tests drive it.
//
//   api URL CA P12 PASS VERSION BODY_FILE   POST the XML body with Basic auth
//                                           (VERSION: HTTP_1_1 or HTTP_2)
//   missing URL CA                          GET with no key manager at all
//   resume URL CA P12 PASS TLS N            N connections (TLSv1.2 or
//                                           TLSv1.3), one SSLContext; with
//                                           N >= 3 a line is read from stdin
//                                           before the last
//   twice URL CA P12 PASS VERSION           two GETs on one connection, a
//                                           line read from stdin between
//   ws URL CA P12 PASS TENANT               WebSocket; then stdin commands,
//                                           as tests/py/push_client.py:
//                                           subscribe, wait_close, close
import java.io.BufferedReader;
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import javax.net.ssl.TrustManagerFactory;

public class OrcaClient {
    static final String AUTH = "Basic " + Base64.getEncoder().encodeToString("ormaster:ormaster123".getBytes());

    static synchronized void report(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    /// The SSLContext monsiaj builds: key managers from the .p12 (none when
    /// p12 is null), trust managers from ca.crt alone.
    static SSLContext context(String ca, String p12, String passFile) throws Exception {
        KeyStore trust = KeyStore.getInstance("PKCS12");
        trust.load(null, null);
        try (FileInputStream in = new FileInputStream(ca)) {
            trust.setCertificateEntry("clinic-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
        tmf.init(trust);
        KeyManagerFactory kmf = null;
        if (p12 != null) {
            char[] pass = Files.readString(Path.of(passFile)).trim().toCharArray();
            KeyStore keys = KeyStore.getInstance("PKCS12");
            try (FileInputStream in = new FileInputStream(p12)) {
                keys.load(in, pass);
            }
            kmf = KeyManagerFactory.getInstance("PKIX");
            kmf.init(keys, pass);
        }
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    static HttpClient client(SSLContext ctx, HttpClient.Version v, String tls) {
        HttpClient.Builder b = HttpClient.newBuilder().sslContext(ctx).version(v).connectTimeout(Duration.ofSeconds(15));
        if (tls != null) {
            SSLParameters p = ctx.getDefaultSSLParameters();
            p.setProtocols(new String[] {tls});
            b.sslParameters(p);
        }
        return b.build();
    }

    static String session(HttpResponse<?> r) {
        SSLSession s = r.sslSession().orElse(null);
        if (s == null) return "null";
        return "{\"protocol\":" + q(s.getProtocol()) + ",\"cipher\":" + q(s.getCipherSuite())
                + ",\"id\":" + q(HexFormat.of().formatHex(s.getId())) + ",\"created\":" + s.getCreationTime() + "}";
    }

    static String answer(HttpResponse<String> r) {
        return "{\"status\":" + r.statusCode() + ",\"version\":" + q(r.version().name())
                + ",\"cert_error\":" + q(r.headers().firstValue("x-client-cert-error").orElse(null))
                + ",\"tls\":" + session(r) + ",\"body\":" + q(r.body()) + "}";
    }

    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "api" -> {
                HttpClient c = client(context(a[2], a[3], a[4]), HttpClient.Version.valueOf(a[5]), null);
                HttpRequest req = HttpRequest.newBuilder(URI.create(a[1]))
                        .header("Authorization", AUTH)
                        .header("Content-Type", "application/xml")
                        .POST(HttpRequest.BodyPublishers.ofFile(Path.of(a[6])))
                        .timeout(Duration.ofSeconds(30))
                        .build();
                report(answer(c.send(req, HttpResponse.BodyHandlers.ofString())));
            }
            case "missing" -> {
                HttpClient c = client(context(a[2], null, null), HttpClient.Version.HTTP_1_1, null);
                HttpRequest req = HttpRequest.newBuilder(URI.create(a[1])).timeout(Duration.ofSeconds(30)).build();
                report(answer(c.send(req, HttpResponse.BodyHandlers.ofString())));
            }
            case "resume" -> {
                // a new HttpClient (its own connection pool) per connection;
                // the session cache is the SSLContext's
                SSLContext ctx = context(a[2], a[3], a[4]);
                int n = Integer.parseInt(a[6]);
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
                for (int i = 0; i < n; i++) {
                    if (n >= 3 && i == n - 1) in.readLine();
                    HttpClient c = client(ctx, HttpClient.Version.HTTP_1_1, a[5]);
                    HttpRequest req = HttpRequest.newBuilder(URI.create(a[1] + "?conn=" + i))
                            .header("Authorization", AUTH)
                            .timeout(Duration.ofSeconds(30)).build();
                    report(answer(c.send(req, HttpResponse.BodyHandlers.ofString())));
                }
            }
            case "twice" -> {
                HttpClient c = client(context(a[2], a[3], a[4]), HttpClient.Version.valueOf(a[5]), null);
                BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
                for (int i = 0; i < 2; i++) {
                    if (i == 1) in.readLine();
                    HttpRequest req = HttpRequest.newBuilder(URI.create(a[1] + "?req=" + i))
                            .header("Authorization", AUTH).timeout(Duration.ofSeconds(30)).build();
                    report(answer(c.send(req, HttpResponse.BodyHandlers.ofString())));
                }
            }
            case "ws" -> websocket(a);
            default -> throw new IllegalArgumentException(a[0]);
        }
        System.exit(0);
    }

    static void websocket(String[] a) throws Exception {
        HttpClient c = client(context(a[2], a[3], a[4]), HttpClient.Version.HTTP_1_1, null);
        CompletableFuture<Void> closed = new CompletableFuture<>();
        WebSocket.Listener listener = new WebSocket.Listener() {
            StringBuilder text = new StringBuilder();

            public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
                text.append(data);
                if (last) {
                    report("{\"recv\":" + q(text.toString()) + "}");
                    text = new StringBuilder();
                }
                ws.request(1);
                return null;
            }

            public CompletionStage<?> onClose(WebSocket ws, int code, String reason) {
                report("{\"closed\":{\"clean\":true,\"code\":" + code + ",\"reason\":" + q(reason) + "}}");
                closed.complete(null);
                return null;
            }

            public void onError(WebSocket ws, Throwable e) {
                report("{\"closed\":{\"clean\":false,\"code\":null,\"error\":" + q(e.toString()) + "}}");
                closed.complete(null);
            }
        };
        WebSocket ws = c.newWebSocketBuilder()
                .header("X-GINBEE-TENANT-ID", a[5])
                .header("Authorization", AUTH)
                .connectTimeout(Duration.ofSeconds(15))
                .buildAsync(URI.create(a[1]), listener)
                .get(30, TimeUnit.SECONDS);
        report("{\"connected\":{\"status\":101,\"subprotocol\":" + (ws.getSubprotocol().isEmpty() ? "null" : q(ws.getSubprotocol())) + "}}");
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            switch (line.trim()) {
                case "subscribe" -> {
                    String id = UUID.randomUUID().toString();
                    String msg = "{\"command\":\"subscribe\",\"req.id\":" + q(id) + ",\"event\":\"*\"}";
                    // reported first: the answers may arrive before sendText returns
                    report("{\"sent\":" + msg + "}");
                    ws.sendText(msg, true).get(15, TimeUnit.SECONDS);
                }
                case "wait_close" -> closed.get(30, TimeUnit.SECONDS);
                case "close" -> {
                    ws.sendClose(WebSocket.NORMAL_CLOSURE, "").get(15, TimeUnit.SECONDS);
                    closed.get(15, TimeUnit.SECONDS);
                    System.exit(0);
                }
                default -> report("{\"error\":" + q("unknown command " + line) + "}");
            }
        }
        System.exit(0);
    }
}
