using System.Text;
using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Motion;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Simulation;

/// <summary>
/// Talks to a <see cref="SimulatedGantry"/> through <see cref="InProcessGantryTransport"/> the way a host
/// does: writes lines and real-time bytes, reads response lines. Every wait is bounded.
/// </summary>
internal sealed class SimLink : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly byte[] _buffer = new byte[256];
    private readonly StringBuilder _partial = new();
    private readonly Queue<string> _lines = new();

    private SimLink(SimulatedGantry gantry, InProcessGantryTransport transport, FakeTimeProvider? fake)
    {
        Gantry = gantry;
        Transport = transport;
        Fake = fake;
    }

    public SimulatedGantry Gantry { get; }
    public InProcessGantryTransport Transport { get; }
    /// <summary>The fake clock, when the link was opened on one.</summary>
    public FakeTimeProvider? Fake { get; }

    /// <summary>
    /// Opens a transport on a new simulator (FakeTimeProvider unless <paramref name="time"/> is given) and reads the banner.
    /// The default profile is sim-origin: home (0, 0, 0), X/Y in [0, 200] and Z in [−40, 0], so protocol tests read plainly;
    /// the tests of the frame itself pass each profile.
    /// </summary>
    public static async Task<SimLink> OpenAsync(MachineProfile? profile = null, TimeProvider? time = null, SimulatedGantryOptions? options = null)
    {
        var fake = time is null ? new FakeTimeProvider(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero)) : null;
#pragma warning disable CA2000 // the SimLink owns both and disposes them; until it exists, the catch below does
        var gantry = new SimulatedGantry(profile ?? TestProfiles.SimOrigin(), time ?? fake!, options);
        var transport = new InProcessGantryTransport(gantry);
#pragma warning restore CA2000
        try
        {
            await transport.OpenAsync(CancellationToken.None).WaitAsync(Timeout);
            return new SimLink(gantry, transport, fake);
        }
        catch
        {
            await transport.DisposeAsync();
            await gantry.DisposeAsync();
            throw;
        }
    }

    public Task SendAsync(string line) => WriteAsync(Encoding.ASCII.GetBytes(line + "\n"));

    public Task RealtimeAsync(byte command) => WriteAsync([command]);

    public Task WriteAsync(byte[] bytes) => Transport.WriteAsync(bytes, CancellationToken.None).AsTask().WaitAsync(Timeout);

    /// <summary>Next non-empty line from the firmware.</summary>
    public async Task<string> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(Timeout);
        while (true)
        {
            while (_lines.Count > 0)
            {
                var line = _lines.Dequeue();
                if (line.Length > 0) return line;
            }
            var n = await Transport.ReadAsync(_buffer, cts.Token);
            if (n == 0) throw new EndOfStreamException("link closed");
            foreach (var b in _buffer.AsSpan(0, n))
            {
                if (b == '\n')
                {
                    _lines.Enqueue(_partial.ToString().TrimEnd('\r'));
                    _partial.Clear();
                }
                else
                {
                    _partial.Append((char)b);
                }
            }
        }
    }

    /// <summary>Reads lines up to and including the first that satisfies <paramref name="last"/>.</summary>
    public async Task<List<string>> ReadUntilAsync(Func<string, bool> last)
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync();
            lines.Add(line);
            if (last(line)) return lines;
        }
    }

    /// <summary>Sends a line and returns every line up to and including its ok / error:N.</summary>
    public async Task<List<string>> CommandAsync(string line)
    {
        await SendAsync(line);
        return await ReadUntilAsync(IsAck);
    }

    /// <summary>Sends a line and returns its ok / error:N (other lines before it are skipped).</summary>
    public async Task<string> AckAsync(string line) => (await CommandAsync(line))[^1];

    /// <summary>
    /// Waits until the firmware's protocol loop is blocked, then returns everything it wrote so far
    /// followed by a fresh status report (the last element).
    /// </summary>
    public async Task<List<string>> SettleAsync()
    {
        await Gantry.WhenProtocolBlockedAsync().WaitAsync(Timeout);
        await RealtimeAsync((byte)'?');
        return await ReadUntilAsync(l => l.StartsWith('<'));
    }

    /// <summary>A status report, skipping (and dropping) other lines before it.</summary>
    public async Task<string> StatusAsync() => (await SettleAsync())[^1];

    /// <summary>Advances the fake clock by <paramref name="seconds"/> of simulated time.</summary>
    public void AdvanceSim(double seconds) =>
        Fake!.Advance(TimeSpan.FromTicks((long)Math.Ceiling(seconds / Gantry.TimeScale * TimeSpan.TicksPerSecond)));

    /// <summary>Unlocks and homes (advancing the fake clock), leaving the machine Idle and homed at home.</summary>
    public async Task HomeAsync()
    {
        await SendAsync("$H");
        await SettleAsync();
        AdvanceSim(120);
        var lines = await ReadUntilAsync(IsAck);
        Assert.Equal("ok", lines[^1]);
    }

    public static bool IsAck(string line) => line == "ok" || line.StartsWith("error:", StringComparison.Ordinal);

    public async ValueTask DisposeAsync()
    {
        await Transport.DisposeAsync();
        await Gantry.DisposeAsync();
    }
}
