using System.IO.Ports;
using System.Text;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;

namespace SmpRobot.Tests.SerialLink;

/// <summary>The simulated gantry as a device on a pseudo-terminal (and TCP), driven through the real transports.</summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "xunit disposes it through IAsyncLifetime.DisposeAsync")]
public sealed class PtyDeviceTests : IAsyncLifetime
{
    private const int Baud = 115200;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly string _dir = Directory.CreateTempSubdirectory("smp-pty-").FullName;
    private SimulatedGantry _gantry = null!;
    private SimulatorHost _host = null!;
    private PtyDevice _pty = null!;

    public Task InitializeAsync()
    {
        _gantry = new SimulatedGantry(TestProfiles.Sim(), TimeProvider.System, new SimulatedGantryOptions { TimeScale = 100 });
        _host = new SimulatorHost(_gantry, Baud, TimeProvider.System);
        _pty = _host.AddPty(Path.Combine(_dir, "ttySIM"));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        await _gantry.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task The_symlink_points_at_a_pty_slave_and_is_removed_on_exit()
    {
        Assert.StartsWith("/dev/pts/", _pty.DevicePath, StringComparison.Ordinal);
        Assert.Equal(_pty.DevicePath, File.ResolveLinkTarget(_pty.LinkPath, returnFinalTarget: true)!.FullName);
        await _host.DisposeAsync();
        Assert.Null(new FileInfo(_pty.LinkPath).LinkTarget);
        Assert.False(File.Exists(_pty.LinkPath));
    }

    [Fact]
    public async Task A_serial_transport_gets_the_banner_settings_and_status_and_each_open_resets_the_board()
    {
        await using (var link = await OpenAsync())
        {
            await link.ReadUntilAsync("Grbl 1.1h");
            await link.WriteAsync("$$\n");
            var settings = await link.ReadUntilAsync("ok\r\n");
            Assert.Contains("$100=80.000\r\n", settings, StringComparison.Ordinal);
            Assert.Contains("$132=40.000\r\n", settings, StringComparison.Ordinal);
            await link.WriteAsync("?");
            var status = await link.ReadUntilAsync(">\r\n");
            Assert.StartsWith("<Alarm|MPos:", status.TrimStart(), StringComparison.Ordinal);
            Assert.Equal(1, _host.ResetsByOpen);

            await link.WriteAsync("$X\n");
            await link.ReadUntilAsync("ok\r\n");
            await link.WriteAsync("G91 G1 X-1 F6000\nG4 P0\n");
            await link.ReadUntilAsync("ok\r\nok\r\n");
        }
        Assert.True(_gantry.Position.X < _gantry.Profile.HomePosition.X, "the move executed");

        // A second open is a DTR pulse: banner again, the unlock is forgotten.
        await using (var again = await OpenAsync())
        {
            var banner = await again.ReadUntilAsync("unlock]\r\n");
            Assert.Contains("Grbl 1.1h", banner, StringComparison.Ordinal);
            Assert.DoesNotContain("ok", banner, StringComparison.Ordinal); // nothing left over from the first client
        }
        Assert.Equal(2, _host.ResetsByOpen);
    }

    [Fact]
    public async Task The_record_round_trips_through_json()
    {
        await using (var link = await OpenAsync())
        {
            await link.ReadUntilAsync("Grbl 1.1h");
            await link.WriteAsync("$X\nG91 G1 X-2 Y-1 F6000\nM3 S1000\nG4 P0.01\nM5\nG4 P0\n");
            await link.ReadUntilAsync("ok\r\nok\r\nok\r\nok\r\nok\r\nok\r\n");
            var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _gantry.RealtimeByteReceived += (_, e) =>
            {
                if (e.Command == (byte)GrblRealtime.FeedHold) hold.TrySetResult();
            };
            await link.WriteAsync("!");
            await hold.Task.WaitAsync(Timeout);
        }
        var path = Path.Combine(_dir, "record.json");
        var written = SimulationRecord.From(_gantry);
        written.Write(path);
        var read = SimulationRecord.Read(path);

        Assert.Equal(written.Motions, read.Motions);
        Assert.Contains(read.Motions, m => m.Kind == SimMotionKind.Feed && m.Line == "G91 G1 X-2 Y-1 F6000" && m.Completed);
        Assert.Equal(written.Spindle, read.Spindle);
        Assert.Equal([true, false], read.Spindle.Select(s => s.On));
        Assert.Equal(written.Realtime, read.Realtime);
        Assert.Contains(read.Realtime, r => r.Command == (byte)'!');
        Assert.Equal(100, read.TimeScale);
    }

    [Fact]
    public async Task Bytes_to_the_board_take_at_least_their_wire_time()
    {
        await using var link = await OpenAsync();
        await link.ReadUntilAsync("Grbl 1.1h");
        var arrived = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
        _gantry.RealtimeByteReceived += (_, e) =>
        {
            if (e.Command == (byte)GrblRealtime.CycleStart) arrived.TrySetResult(e.ArrivedTimestamp);
        };
        const int bytes = 1152; // 100 ms at 115200 baud
        var data = new byte[bytes];
        Array.Fill(data, (byte)' ');
        data[^1] = (byte)GrblRealtime.CycleStart;

        var sent = TimeProvider.System.GetTimestamp();
        await link.Transport.WriteAsync(data, CancellationToken.None);
        var elapsed = TimeProvider.System.GetElapsedTime(sent, await arrived.Task.WaitAsync(Timeout));

        Assert.True(elapsed.TotalSeconds >= bytes * 10.0 / Baud, $"{bytes} bytes reached the board after {elapsed.TotalMilliseconds} ms, faster than {Baud} baud allows");
    }

    [Fact]
    public async Task Bytes_from_the_board_take_at_least_their_wire_time()
    {
        await using var link = await OpenAsync();
        await link.ReadUntilAsync("unlock]\r\n"); // the whole banner, so only the answer is timed
        var sent = TimeProvider.System.GetTimestamp();
        await link.WriteAsync("$$\n$$\n$$\n$$\n");
        var answer = await link.ReadUntilAsync("ok\r\n", occurrences: 4);
        var elapsed = TimeProvider.System.GetElapsedTime(sent);

        Assert.True(answer.Length > 700, $"{answer.Length} bytes: {answer}");
        Assert.True(elapsed.TotalSeconds >= answer.Length * 10.0 / Baud, $"{answer.Length} bytes came back in {elapsed.TotalMilliseconds} ms, faster than {Baud} baud allows");
    }

    [Fact]
    public void System_IO_Ports_opens_the_pty_8N1_and_reads_settings_and_status()
    {
        using var port = new SerialPort(_pty.LinkPath, Baud, Parity.None, 8, StopBits.One) { Handshake = Handshake.None, NewLine = "\r\n", ReadTimeout = 10_000 };
        port.Open();
        Assert.StartsWith("Grbl 1.1h", ReadLineSkippingBlanks(port), StringComparison.Ordinal);
        Assert.Equal("[MSG:'$H'|'$X' to unlock]", port.ReadLine());
        port.Write("$$\n");
        var settings = new List<string>();
        for (var line = port.ReadLine(); line != "ok"; line = port.ReadLine()) settings.Add(line);
        Assert.Contains("$110=6000.000", settings);
        Assert.Equal(34, settings.Count(l => l.StartsWith('$'))); // grbl 1.1 lists $0-$6, $10-$13, $20-$27, $30-$32 and the 12 axis settings
        port.Write("?");
        Assert.StartsWith("<Alarm|MPos:0.000,0.000,0.000|", port.ReadLine(), StringComparison.Ordinal);
        Assert.Equal(1, _host.ResetsByOpen);
    }

    [Fact]
    public void System_IO_Ports_cannot_assert_DTR_on_a_pty_which_is_why_the_transport_leaves_it_alone_there()
    {
        // A pty has no modem-control lines (ENOTTY); on a real port DTR resets the board.
        using var port = new SerialPort(_pty.LinkPath, Baud) { DtrEnable = true };
        Assert.ThrowsAny<IOException>(port.Open);
    }

    private static string ReadLineSkippingBlanks(SerialPort port)
    {
        var line = port.ReadLine();
        while (line.Length == 0) line = port.ReadLine();
        return line;
    }

    [Fact]
    public async Task Over_tcp_each_connection_resets_the_board_and_a_second_client_is_turned_away()
    {
        var tcp = _host.AddTcp(0);
#pragma warning disable CA2000 // the LinkReader owns the transport and disposes it
        var first = new TcpGantryTransport("127.0.0.1", tcp.Port);
#pragma warning restore CA2000
        await using var link = new LinkReader(first);
        await first.OpenAsync(CancellationToken.None);
        await link.ReadUntilAsync("Grbl 1.1h");
        await link.WriteAsync("?");
        Assert.Contains("<Alarm|", await link.ReadUntilAsync(">\r\n"), StringComparison.Ordinal);

#pragma warning disable CA2000 // the LinkReader owns the transport and disposes it
        var second = new TcpGantryTransport("127.0.0.1", tcp.Port);
#pragma warning restore CA2000
        await using (var other = new LinkReader(second))
        {
            await second.OpenAsync(CancellationToken.None);
            await Assert.ThrowsAsync<IOException>(async () => await second.ReadAsync(new byte[16], CancellationToken.None).AsTask().WaitAsync(Timeout));
        }

        await link.WriteAsync("$$\n");
        Assert.Contains("$110=6000.000", await link.ReadUntilAsync("ok\r\n"), StringComparison.Ordinal);
        Assert.Equal(1, tcp.Connections);
        Assert.Equal(1, _host.ResetsByOpen);
    }

    [System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000", Justification = "the returned LinkReader owns the transport and disposes it")]
    private async Task<LinkReader> OpenAsync()
    {
        var transport = new SerialGantryTransport(_pty.LinkPath, Baud);
        Assert.Equal($"serial:{_pty.LinkPath}@115200", transport.Description);
        await transport.OpenAsync(CancellationToken.None);
        return new LinkReader(transport);
    }

    /// <summary>Accumulates what a transport receives, as text.</summary>
    private sealed class LinkReader(IGantryTransport transport) : IAsyncDisposable
    {
        private readonly StringBuilder _pending = new();
        private readonly byte[] _buffer = new byte[1024];

        public IGantryTransport Transport => transport;

        public ValueTask WriteAsync(string text) => transport.WriteAsync(Encoding.ASCII.GetBytes(text), CancellationToken.None);

        /// <summary>Reads until <paramref name="marker"/> has been seen <paramref name="occurrences"/> times; returns everything up to and including the last.</summary>
        public async Task<string> ReadUntilAsync(string marker, int occurrences = 1)
        {
            using var cts = new CancellationTokenSource(Timeout);
            while (true)
            {
                var text = _pending.ToString();
                var at = -marker.Length;
                for (var k = 0; k < occurrences; k++)
                {
                    at = text.IndexOf(marker, at + marker.Length, StringComparison.Ordinal);
                    if (at < 0) break;
                }
                if (at >= 0)
                {
                    _pending.Remove(0, at + marker.Length);
                    return text[..(at + marker.Length)];
                }
                var n = await transport.ReadAsync(_buffer, cts.Token);
                if (n == 0) throw new IOException("link closed while waiting for " + marker);
                _pending.Append(Encoding.ASCII.GetString(_buffer, 0, n));
            }
        }

        public ValueTask DisposeAsync() => transport.DisposeAsync();
    }
}
