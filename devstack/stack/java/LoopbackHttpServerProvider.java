package bethos.devstack;

import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsServer;
import com.sun.net.httpserver.spi.HttpServerProvider;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * The JDK's own HTTP server, bound to loopback whenever it is asked for the wildcard address.
 *
 * <p>Flink's PrometheusReporter (flink-metrics-prometheus 2.2) starts its HTTP server on
 * {@code new InetSocketAddress(port)}, every interface, and has no option for the host. The
 * local stack's JobManager and TaskManagers run with this class on their classpath and
 * {@code -Dcom.sun.net.httpserver.HttpServerProvider=bethos.devstack.LoopbackHttpServerProvider},
 * so their reporters listen on loopback only. Servers created with an explicit address, or
 * unbound and bound later, are left as asked.
 */
public final class LoopbackHttpServerProvider extends HttpServerProvider {
    private final HttpServerProvider jdk;

    public LoopbackHttpServerProvider() throws ReflectiveOperationException {
        // The JDK's provider; its package needs --add-exports=jdk.httpserver/sun.net.httpserver=ALL-UNNAMED.
        jdk = (HttpServerProvider) Class.forName("sun.net.httpserver.DefaultHttpServerProvider")
                .getConstructor()
                .newInstance();
    }

    static InetSocketAddress loopback(InetSocketAddress address) {
        if (address == null || address.isUnresolved() || !address.getAddress().isAnyLocalAddress()) {
            return address;
        }
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), address.getPort());
    }

    @Override
    public HttpServer createHttpServer(InetSocketAddress address, int backlog) throws IOException {
        return jdk.createHttpServer(loopback(address), backlog);
    }

    @Override
    public HttpsServer createHttpsServer(InetSocketAddress address, int backlog) throws IOException {
        return jdk.createHttpsServer(loopback(address), backlog);
    }
}
