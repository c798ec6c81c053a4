using System.Text;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Tests.Simulation;

namespace SmpRobot.Tests.Faults;

/// <summary>Each fault at the simulator level, on a fake clock, through the in-process transport.</summary>
public class SimulatedFaultTests
{
    // One dot as DotProgram writes it: travel at hover, sync, then plunge, dwell, retract, sync.
    private static readonly string[] Dot =
    [
        "G21 G90", "M3 S1000", "G90 G1 X10 Y10 F6000", "G91 G1 Z-3 F1200", "G4 P0",
        "G91 G1 Z-2 F1200", "G4 P0.2", "G91 G1 Z2 F1200", "G4 P0",
    ];

    private static SimulatedGantryOptions With(string spec) => new() { Faults = FaultPlan.Parse(spec) };

    /// <summary>Opens a link, reads the power-on banner and homes ($H is host line 1).</summary>
    private static async Task<SimLink> HomedAsync(string spec)
    {
        var link = await SimLink.OpenAsync(options: With(spec));
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.HomeAsync();
        return link;
    }

    /// <summary>Waits until the firmware has nothing left to do, then reads everything it wrote.</summary>
    private static async Task DrainAsync(SimLink link)
    {
        await link.Gantry.WhenProtocolBlockedAsync().WaitAsync(SimLink.Timeout);
        while (link.Gantry.OutputBytesPending > 0) await link.ReadLineAsync();
    }

    [Fact]
    public async Task Drop_at_line_drops_the_first_digit_of_the_first_axis_value_of_that_line_only()
    {
        await using var link = await HomedAsync("drop-at-line=3");
        Assert.Equal("ok", await link.AckAsync("G21 G90"));           // line 2
        Assert.Equal("ok", await link.AckAsync("G1 X12.5 Y20 F6000")); // line 3: X12.5 arrives as X2.5
        Assert.Equal("ok", await link.AckAsync("G1 X12.5 Y20"));       // line 4: untouched
        await link.SettleAsync();
        link.AdvanceSim(30);
        var record = link.Gantry.MotionRecord.Where(m => m.Kind == SimMotionKind.Feed).ToList();
        Assert.Equal(2, record.Count);
        Assert.Equal(2.5, record[0].To.X, 6);
        Assert.Equal(12.5, record[1].To.X, 6);
        var fault = Assert.Single(link.Gantry.FaultLog);
        Assert.Equal("drop-at-line", fault.Fault);
        Assert.Equal(3, fault.Line);
        Assert.Contains("\"G1 X2.5 Y20 F6000\"", fault.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Flip_at_line_flips_bit_zero_of_that_digit_so_the_firmware_accepts_another_number()
    {
        await using var link = await HomedAsync("flip-at-line=2");
        Assert.Equal("ok", await link.AckAsync("G90 G1 X32.5 Y20 F6000")); // X32.5 arrives as X22.5
        await link.SettleAsync();
        link.AdvanceSim(30);
        Assert.Equal(22.5, link.Gantry.Position.X, 6);
        var fault = Assert.Single(link.Gantry.FaultLog);
        Assert.Equal(("flip-at-line", 2), (fault.Fault, fault.Line));
    }

    [Fact]
    public async Task Drop_and_flip_with_a_probability_are_deterministic_per_seed_and_logged_byte_by_byte()
    {
        static async Task<(List<string> Log, int Dropped)> RunAsync(string spec)
        {
            await using var link = await SimLink.OpenAsync(options: With(spec));
            await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
            var sent = 0;
            for (var i = 0; i < 20; i++)
            {
                var line = "G4 P0.00" + (i % 10).ToString(System.Globalization.CultureInfo.InvariantCulture);
                await link.SendAsync(line);
                sent += line.Length + 1;
            }
            await link.SettleAsync();
            return (link.Gantry.FaultLog.Select(f => f.Fault + "@" + f.Line + ":" + f.Detail).ToList(), sent);
        }

        var (drops, bytesSent) = await RunAsync("drop=0.1,seed=5");
        Assert.Equal(drops, (await RunAsync("drop=0.1,seed=5")).Log);
        Assert.NotEqual(drops, (await RunAsync("drop=0.1,seed=6")).Log);
        Assert.All(drops, d => Assert.StartsWith("drop@", d, StringComparison.Ordinal));
        Assert.InRange(drops.Count, 1, bytesSent / 3); // about 10 % of the bytes
        var (everyByte, _) = await RunAsync("drop=1");
        Assert.Equal(bytesSent, everyByte.Count);

        var (flips, _) = await RunAsync("flip=0.1,seed=5");
        Assert.Equal(flips, (await RunAsync("flip=0.1,seed=5")).Log);
        Assert.All(flips, f => Assert.StartsWith("flip@", f, StringComparison.Ordinal));
        Assert.NotEmpty(flips);
    }

    [Fact]
    public async Task Drop_really_removes_the_byte_from_what_the_firmware_executes()
    {
        // With every byte dropped nothing reaches the firmware: no answer, an empty receive buffer.
        await using var link = await SimLink.OpenAsync(options: With("drop=1"));
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.SendAsync("$X");
        Assert.Equal(0, link.Gantry.OutputBytesPending);
        var status = await link.StatusAsync();
        Assert.StartsWith("<Alarm|", status, StringComparison.Ordinal); // $X never arrived
        Assert.EndsWith("|Bf:15,128|FS:0,0>", status, StringComparison.Ordinal);
        Assert.Equal(3, link.Gantry.FaultLog.Count);
    }

    [Fact]
    public async Task Delay_ok_holds_every_ok_for_the_given_wall_time()
    {
        await using var link = await SimLink.OpenAsync(options: With("delay-ok=100"));
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        await link.SendAsync("$X");
        Assert.Equal("[MSG:Caution: Unlocked]", await link.ReadLineAsync()); // feedback is not delayed
        link.Fake!.Advance(TimeSpan.FromMilliseconds(99));
        Assert.DoesNotContain("ok", await link.SettleAsync()); // the ok is not due yet, so cannot precede this status
        link.Fake.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal("ok", await link.ReadLineAsync());
        Assert.Equal("delay-ok", Assert.Single(link.Gantry.FaultLog).Fault);
    }

    [Fact]
    public async Task Lose_ok_at_line_never_answers_that_line_but_executes_it()
    {
        await using var link = await SimLink.OpenAsync(options: With("lose-ok-at-line=2"));
        await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
        Assert.Equal("ok", await link.AckAsync("$X"));  // line 1
        await link.SendAsync("G91");                     // line 2: executed, never acknowledged
        await link.SendAsync("G1 X5 F6000");             // line 3: relative thanks to line 2
        var lines = await link.SettleAsync();
        Assert.Equal(1, lines.Count(l => l == "ok"));
        link.AdvanceSim(10);
        Assert.Equal(5, link.Gantry.Position.X, 6);
        var fault = Assert.Single(link.Gantry.FaultLog);
        Assert.Equal(("lose-ok-at-line", 2), (fault.Fault, fault.Line));
    }

    [Fact]
    public async Task Alarm_at_dot_trips_a_hard_limit_when_that_plunge_starts_and_blocks_until_reset()
    {
        await using var link = await HomedAsync("alarm-at-dot=1");
        foreach (var line in Dot) await link.SendAsync(line);
        await link.SettleAsync();
        link.AdvanceSim(30);
        var lines = await link.ReadUntilAsync(l => l.StartsWith("[MSG:Reset", StringComparison.Ordinal));
        Assert.Equal("ALARM:1", lines[^2]);
        Assert.Equal("Alarm", link.Gantry.State);
        Assert.False(link.Gantry.Homed);
        Assert.False(link.Gantry.SpindleOn);
        // The travel descent (Z-3 after an XY move) ran; the plunge (Z-2 after G4 P0) never moved.
        var z = link.Gantry.MotionRecord.Where(m => m.Kind == SimMotionKind.Feed).Select(m => m.To.Z).ToList();
        Assert.Equal(-3, z[^1], 6);
        var fault = Assert.Single(link.Gantry.FaultLog);
        Assert.Equal(("alarm-at-dot", 1, 7), (fault.Fault, fault.Dot, fault.Line));
        // Nothing is taken (not even answered with error:9) until a reset; the reset answers with the banner and the lock message.
        await link.SendAsync("G4 P0");
        await link.Gantry.WhenProtocolBlockedAsync().WaitAsync(SimLink.Timeout);
        Assert.Equal(0, link.Gantry.OutputBytesPending);
        await link.RealtimeAsync(0x18);
        Assert.Equal("Grbl 1.1h ['$' for help]", await link.ReadLineAsync());
        Assert.Equal("[MSG:'$H'|'$X' to unlock]", await link.ReadLineAsync());
    }

    [Fact]
    public async Task Reset_at_dot_restarts_the_board_halfway_through_that_plunge()
    {
        await using var link = await HomedAsync("reset-at-dot=1");
        foreach (var line in Dot) await link.SendAsync(line);
        await link.SettleAsync();
        link.AdvanceSim(30);
        var lines = await link.ReadUntilAsync(l => l.StartsWith("Grbl", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("ALARM", StringComparison.Ordinal));
        Assert.Equal("[MSG:'$H'|'$X' to unlock]", await link.ReadLineAsync());
        Assert.False(link.Gantry.Homed);
        Assert.False(link.Gantry.SpindleOn);
        var plunge = link.Gantry.MotionRecord.Last(m => m.Kind == SimMotionKind.Feed);
        Assert.Equal("G91 G1 Z-2 F1200", plunge.Line);
        Assert.False(plunge.Completed);
        Assert.InRange(plunge.To.Z, -4.999, -3.001); // stopped mid-way down from -3 to -5
        Assert.Equal(plunge.To, link.Gantry.Position);
        Assert.Equal("reset-at-dot", Assert.Single(link.Gantry.FaultLog).Fault);
    }

    [Fact]
    public async Task Rx_smaller_than_the_host_assumes_drops_the_overflow_silently()
    {
        static async Task<(int Dropped, IReadOnlyList<FaultEvent> Log, string Status)> FillAsync(string spec)
        {
            await using var link = await SimLink.OpenAsync(options: With(spec));
            await link.ReadUntilAsync(l => l.StartsWith("[MSG", StringComparison.Ordinal));
            await link.AckAsync("$X");
            await link.SendAsync("G4 P5"); // the firmware reads nothing more for 5 s
            await link.SettleAsync();
            // 115 bytes: fits the 127 usable bytes the host counts with, not a 100-byte buffer.
            await link.WriteAsync(Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("G4 P0.00000000001\n", 6)) + "G4 P0.\n"));
            var status = (await link.SettleAsync())[^1];
            return (link.Gantry.DroppedBytes, link.Gantry.FaultLog, status);
        }

        var healthy = await FillAsync("");
        Assert.Equal(0, healthy.Dropped);
        Assert.Contains("|Bf:15,13|", healthy.Status, StringComparison.Ordinal);

        var small = await FillAsync("rx=100");
        Assert.Equal(15, small.Dropped);
        Assert.Contains("|Bf:15,0|", small.Status, StringComparison.Ordinal);
        var fault = Assert.Single(small.Log);
        Assert.Equal("rx", fault.Fault);
        Assert.Contains("15 byte(s)", fault.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stall_at_dot_silences_everything_for_the_given_time_then_answers_again()
    {
        // Time scale 1: the stall lasts 10 simulated seconds from the moment the plunge reached depth (< 1 s in).
        await using var link = await HomedAsync("stall-at-dot=1:10000");
        foreach (var line in Dot[..6]) await link.SendAsync(line); // up to and including the plunge
        await link.SettleAsync();
        link.AdvanceSim(5); // the plunge reaches depth: the firmware hangs
        await DrainAsync(link);
        Assert.Equal("stall-at-dot", Assert.Single(link.Gantry.FaultLog).Fault);
        await link.SendAsync("G4 P0.2");
        await link.RealtimeAsync((byte)'?');
        Assert.Equal(0, link.Gantry.OutputBytesPending); // no ok, no status
        Assert.True(link.Gantry.SpindleOn);
        Assert.Equal(-5, link.Gantry.Position.Z, 6);

        link.AdvanceSim(6);
        var status = (await link.ReadUntilAsync(l => l.StartsWith('<')))[^1];
        Assert.StartsWith("<Idle|", status, StringComparison.Ordinal); // the report asked for during the stall
        Assert.Contains(link.Gantry.FaultLog, f => f.Detail == "firmware answers again");
        Assert.Equal("ok", (await link.ReadUntilAsync(SimLink.IsAck))[^1]); // the dwell sent during the stall
    }

    [Fact]
    public async Task Stall_at_dot_without_ms_lasts_forever()
    {
        await using var link = await HomedAsync("stall-at-dot=1");
        foreach (var line in Dot) await link.SendAsync(line);
        await link.SettleAsync();
        link.AdvanceSim(3600);
        await DrainAsync(link);
        await link.RealtimeAsync((byte)'?');
        Assert.Equal(0, link.Gantry.OutputBytesPending);
        // The needle stays down with the drive on: only a hard-wired stop helps a hung firmware.
        Assert.Equal(-5, link.Gantry.Position.Z, 6);
        Assert.True(link.Gantry.SpindleOn);
    }

    [Fact]
    public async Task Disconnect_at_dot_pulls_the_cable_when_that_plunge_completes_and_the_board_goes_on()
    {
        await using var link = await HomedAsync("disconnect-at-dot=1");
        foreach (var line in Dot) await link.SendAsync(line);
        await link.SettleAsync();
        link.AdvanceSim(30);
        await Assert.ThrowsAsync<EndOfStreamException>(async () => await link.ReadUntilAsync(_ => false));
        Assert.Throws<IOException>(() => link.Gantry.Receive("?"u8));
        await link.Gantry.WhenProtocolBlockedAsync().WaitAsync(SimLink.Timeout);
        var fault = Assert.Single(link.Gantry.FaultLog);
        Assert.Equal(("disconnect-at-dot", 1), (fault.Fault, fault.Dot));
        // Dwell and retract were already in the firmware's buffer: they ran.
        Assert.Equal(-3, link.Gantry.Position.Z, 6);
        Assert.True(link.Gantry.MotionRecord[^1].Completed);
    }
}
