using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace SmpRobot.Controller.Gantry.Simulation;

/// <summary>
/// The board behind a loopback TCP port, like a serial-to-network bridge whose connect toggles DTR:
/// each new connection hard-resets the board. One client at a time; a second connection is closed
/// at once. Both directions are paced at the baud rate.
/// </summary>
public sealed class TcpDevice : IAsyncDisposable
{
    private readonly SimulatorHost _host;
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly LinkPumps _pumps;
    private readonly Lock _gate = new();
    private readonly Task _acceptLoop;
    private Socket? _client;

    private TcpDevice(SimulatorHost host, TcpListener listener)
    {
        _host = host;
        _listener = listener;
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        _pumps = host.AttachLink(WriteToHost, "tcp " + Port);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The port listened on (127.0.0.1).</summary>
    public int Port { get; }

    /// <summary>Connections accepted (each reset the board).</summary>
    public int Connections { get; private set; }

    internal static TcpDevice Create(SimulatorHost host, int port)
    {
        var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start(1);
        return new TcpDevice(host, listener);
    }

    private void WriteToHost(ReadOnlySpan<byte> data)
    {
        Socket? client;
        lock (_gate) client = _client;
        if (client is null) return; // no listener: the bytes go nowhere
        try
        {
            while (!data.IsEmpty) data = data[client.Send(data)..];
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // The client went away; its read loop notices and cleans up.
        }
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptSocketAsync(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            lock (_gate)
            {
                if (_client is not null)
                {
                    _host.Log.TcpSecondClientRefused(Port);
                    socket.Dispose();
                    continue;
                }
                socket.NoDelay = true;
                _client = socket;
                Connections++;
            }
            _host.ResetByOpen($"tcp client {socket.RemoteEndPoint}", _pumps);
            _ = Task.Run(() => ReadLoopAsync(socket, token), CancellationToken.None);
        }
    }

    private async Task ReadLoopAsync(Socket socket, CancellationToken token)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, token).ConfigureAwait(false);
                if (n == 0) break;
                _pumps.ToFirmware.Enqueue(buffer.AsSpan(0, n));
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Closed by the client or by us.
        }
        lock (_gate)
        {
            if (_client == socket) _client = null;
        }
        socket.Dispose();
        _host.Log.TcpClientDisconnected(Port);
    }

    /// <summary>Stops listening and drops the client.</summary>
    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        await _acceptLoop.ConfigureAwait(false);
        lock (_gate)
        {
            _client?.Dispose();
            _client = null;
        }
        await _host.DetachLinkAsync(_pumps).ConfigureAwait(false);
    }
}
