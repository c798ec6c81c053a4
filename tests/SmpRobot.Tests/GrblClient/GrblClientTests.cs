using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Gantry;
using Client = SmpRobot.Controller.Gantry.GrblClient;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.GrblClient;

public sealed class GrblClientTests : IAsyncLifetime, IAsyncDisposable
{
    private const string BannerLine = "Grbl 1.1h ['$' for help]";
    private static readonly TimeSpan Guard = TimeSpan.FromSeconds(10);

    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly ScriptedTransport _transport = new();
    private readonly Client _client;
    private readonly List<GantryFaultException> _faults = [];
    private readonly Lock _faultsGate = new();
    private TaskCompletionSource<GantryFaultException> _nextFault = NewFaultSignal();

    public GrblClientTests()
    {
        _client = new Client(_transport, _time);
        _client.Faulted += (_, e) =>
        {
            var fault = e.Fault;
            TaskCompletionSource<GantryFaultException> signal;
            lock (_faultsGate)
            {
                _faults.Add(fault);
                signal = _nextFault;
                _nextFault = NewFaultSignal();
            }

            signal.TrySetResult(fault);
        };
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xunit 2 calls IAsyncLifetime.DisposeAsync; IAsyncDisposable states the ownership (idempotent).
    public Task DisposeAsync() => _client.DisposeAsync().AsTask().WaitAsync(Guard);

    async ValueTask IAsyncDisposable.DisposeAsync() => await _client.DisposeAsync();

    [Fact]
    public async Task Connect_waits_for_the_banner_and_writes_nothing_before_it()
    {
        var connect = _client.ConnectAsync(CancellationToken.None);

        Assert.False(connect.IsCompleted);
        await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G0 X1"));
        // Boot noise before the banner is not a protocol fault.
        _transport.Push("\u00ff\u00fe garbage\r\n");
        _transport.PushLine(BannerLine);
        _transport.PushLine("[MSG:'$H'|'$X' to unlock]");

        Assert.Equal(BannerLine, await connect.WaitAsync(Guard));
        Assert.True(_client.IsConnected);
        Assert.Equal(BannerLine, _client.Banner);
        Assert.Equal(1, _transport.OpenCount);
        Assert.Empty(_transport.Written());
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task Connect_soft_resets_once_when_no_banner_arrives()
    {
        var connect = _client.ConnectAsync(CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(5));
        await _transport.WaitForByteAsync(0x18);
        Assert.False(connect.IsCompleted);

        _transport.PushLine(BannerLine);

        Assert.Equal(BannerLine, await connect.WaitAsync(Guard));
        Assert.Equal([0x18], _transport.Written());
    }

    [Fact]
    public async Task Connect_fails_with_LinkLost_when_the_soft_reset_gets_no_banner_either()
    {
        var connect = _client.ConnectAsync(CancellationToken.None);
        _time.Advance(TimeSpan.FromSeconds(5));
        await _transport.WaitForByteAsync(0x18);
        _time.Advance(TimeSpan.FromSeconds(5));

        var fault = await Assert.ThrowsAsync<GantryFaultException>(() => connect.WaitAsync(Guard));
        Assert.Equal(GantryFaultKind.LinkLost, fault.Kind);
        Assert.False(_client.IsConnected);
    }

    [Theory]
    [InlineData("G1 X1\n")]
    [InlineData("G1 X1\r")]
    [InlineData("G1 X1 ?")]
    [InlineData("G1 X1 !")]
    [InlineData("~")]
    [InlineData("G1 X\u00e9")]
    public async Task Invalid_lines_are_refused(string line)
    {
        await ConnectAsync();
        await Assert.ThrowsAsync<ArgumentException>(() => SendAsync(line));
        Assert.Empty(_transport.Written());
    }

    [Fact]
    public async Task A_line_must_fit_the_receive_buffer_with_its_newline()
    {
        await ConnectAsync();
        // 128-byte buffer, 127 usable: 126 characters + newline fit, 127 do not.
        await Assert.ThrowsAsync<ArgumentException>(() => SendAsync(new string('G', 127)));
        var sent = await SendAsync(new string('G', 126));
        Assert.Equal(127, _client.BytesInFlight);
        _transport.PushOk();
        Assert.True((await sent.Ack.WaitAsync(Guard)).Ok);
    }

    [Fact]
    public async Task Acks_complete_in_order_and_errors_carry_their_meaning()
    {
        await ConnectAsync();
        var first = await SendAsync("G0 X1");
        var second = await SendAsync("G5 X2");
        var third = await SendAsync("G0 X3");
        Assert.Equal(3, _client.LinesInFlight);
        Assert.Equal(18, _client.BytesInFlight);
        Assert.Equal("G0 X1\nG5 X2\nG0 X3\n", _transport.WrittenText());

        _transport.PushOk();
        _transport.PushError(20);
        _transport.PushOk();

        var a1 = await first.Ack.WaitAsync(Guard);
        var a2 = await second.Ack.WaitAsync(Guard);
        var a3 = await third.Ack.WaitAsync(Guard);
        Assert.Equal(new LineAck("G0 X1", true, 0, ""), a1);
        Assert.Equal("G5 X2", a2.Line);
        Assert.False(a2.Ok);
        Assert.Equal(20, a2.ErrorCode);
        Assert.Equal(GrblProtocol.ErrorText(20), a2.ErrorText);
        Assert.Equal("G0 X3", a3.Line);
        Assert.True(a3.Ok);
        Assert.Equal(0, _client.BytesInFlight);
        Assert.Equal(0, _client.LinesInFlight);
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task ExecuteAsync_returns_the_ack_even_when_it_arrives_split_across_reads()
    {
        await ConnectAsync();
        var execute = _client.ExecuteAsync("G4 P0", CancellationToken.None);
        await _transport.WaitForLinesAsync(1);
        _transport.Push("er");
        _transport.Push("ror:");
        _transport.Push("9\r");
        _transport.Push("\n");

        var ack = await execute.WaitAsync(Guard);
        Assert.False(ack.Ok);
        Assert.Equal(9, ack.ErrorCode);
    }

    [Fact]
    public async Task Character_counting_never_overfills_the_buffer_and_resumes_on_ok()
    {
        await ConnectAsync();
        // Lines of varying length (19..23 bytes with newline).
        var lines = Enumerable.Range(0, 40).Select(i => $"G1 X{i * 7.5:0.000} Y{i % 3}.5 F{900 + (i * 11)}").ToArray();
        var acks = new List<Task<LineAck>>();
        var producer = Task.Run(async () =>
        {
            foreach (var line in lines)
            {
                acks.Add((await SendAsync(line)).Ack);
            }
        });

        // The first lines that fit in 127 bytes go out at once, then the sender must wait.
        int fitting = 0;
        int bytes = 0;
        while (bytes + lines[fitting].Length + 1 <= 127)
        {
            bytes += lines[fitting++].Length + 1;
        }

        await _transport.WaitForLinesAsync(fitting);
        Assert.Equal(fitting, _transport.CompleteLinesWritten);
        Assert.Equal(bytes, _client.BytesInFlight);
        Assert.False(producer.IsCompleted);

        // Acknowledge one line at a time; each ok lets more through, never past 127 bytes.
        for (int acked = 0; acked < lines.Length; acked++)
        {
            await _transport.WaitUntilAsync(t => t.CompleteLinesWritten >= Math.Min(lines.Length, acked + 1));
            _transport.PushOk();
        }

        await producer.WaitAsync(Guard);
        var results = await Task.WhenAll(acks).WaitAsync(Guard);

        Assert.All(results, ack => Assert.True(ack.Ok));
        Assert.Equal(lines, results.Select(a => a.Line));
        Assert.Equal(string.Concat(lines.Select(l => l + "\n")), _transport.WrittenText());
        Assert.InRange(_transport.MaxBufferedBytes, 127 - 23, 127);
        Assert.Equal(0, _client.BytesInFlight);
    }

    [Fact]
    public async Task A_realtime_byte_goes_out_while_a_sender_waits_for_room()
    {
        await ConnectAsync();
        var filler = new string('G', 100);
        var first = await SendAsync(filler);
        var blocked = _client.SendLineAsync("G0 X1 Y1 Z1 F1000 (does not fit)", CancellationToken.None).AsTask();
        Assert.False(blocked.IsCompleted);

        await _client.SendRealtimeAsync(GrblRealtime.FeedHold).AsTask().WaitAsync(Guard);

        Assert.Equal(filler + "\n!", _transport.WrittenText());
        Assert.Equal(101, _client.BytesInFlight); // real-time bytes are not counted
        Assert.False(blocked.IsCompleted);

        _transport.PushOk();
        await first.Ack.WaitAsync(Guard);
        var second = await blocked.WaitAsync(Guard);
        Assert.Equal(filler + "\n!G0 X1 Y1 Z1 F1000 (does not fit)\n", _transport.WrittenText());
        Assert.Equal("G0 X1 Y1 Z1 F1000 (does not fit)", second.Line);
    }

    [Fact]
    public async Task A_line_that_waited_for_room_is_not_written_once_its_gate_closed()
    {
        await ConnectAsync();
        var filler = new string('G', 115);
        var first = await SendAsync(filler);
        var open = true;
        var blocked = _client.SendLineAsync("G91 G1 Z-1 F600", CancellationToken.None, () => Volatile.Read(ref open)).AsTask();
        Assert.False(blocked.IsCompleted);

        // A stop begins while the line waits: its gate closes, then the buffer gets room.
        Volatile.Write(ref open, false);
        _transport.PushOk();
        await first.Ack.WaitAsync(Guard);

        await Assert.ThrowsAsync<LineWriteRefusedException>(() => blocked.WaitAsync(Guard));
        Assert.Equal(filler + "\n", _transport.WrittenText());
        Assert.Equal(0, _client.BytesInFlight);
        // The client is still usable: the refusal was the caller's, not a fault.
        var next = await SendAsync("G4 P0");
        Assert.Equal(filler + "\nG4 P0\n", _transport.WrittenText());
        Assert.Empty(Faults());
        _transport.PushOk();
        Assert.True((await next.Ack.WaitAsync(Guard)).Ok);
    }

    [Fact]
    public async Task A_realtime_byte_waits_only_for_a_line_write_already_in_progress()
    {
        await ConnectAsync();
        _transport.HoldWrites();
        var line = SendAsync("G1 X5 F300");
        await _transport.WriteHeld();

        var hold = _client.SendRealtimeAsync(GrblRealtime.FeedHold).AsTask();
        Assert.False(hold.IsCompleted);
        _transport.ReleaseWrites();
        await hold.WaitAsync(Guard);
        await line;

        // Contiguous: the line is whole, the real-time byte after it, never inside it.
        Assert.Equal("G1 X5 F300\n!", _transport.WrittenText());
    }

    [Fact]
    public async Task An_alarm_that_crosses_a_line_on_the_wire_latches_a_Protocol_fault()
    {
        await ConnectAsync();
        _transport.HoldWrites();
        var send = SendAsync("G1 X5 F300");
        await _transport.WriteHeld();
        var alarmRaised = NextFault();
        _transport.PushLine("ALARM:13");
        Assert.Equal(GantryFaultKind.Alarm, (await alarmRaised.WaitAsync(Guard)).Kind);

        var protocolRaised = NextFault();
        _transport.ReleaseWrites();
        var sent = await send;

        // The firmware may still answer that line: counting is no longer trustworthy.
        var protocol = await protocolRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.Protocol, protocol.Kind);
        // Its listener may hear it before the alarm's own event: it names the alarm, its cause, first.
        Assert.StartsWith("ALARM:13", protocol.Message, StringComparison.Ordinal);
        Assert.Equal(GantryFaultKind.Alarm, (await Assert.ThrowsAsync<GantryFaultException>(() => sent.Ack.WaitAsync(Guard))).Kind);
        Assert.Equal(GantryFaultKind.Protocol, (await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("$X"))).Kind);
    }

    [Fact]
    public async Task A_probe_report_belongs_to_the_line_whose_ok_follows_it()
    {
        await ConnectAsync();
        var before = await SendAsync("G91 G0 Z1");
        var probe = await SendAsync("G38.2 G91 Z-3 F60");
        var after = await SendAsync("G91 G0 Z2");
        _transport.PushOk();
        Assert.Null((await before.Ack.WaitAsync(Guard)).Probe);

        _transport.PushLine("[PRB:50.000,50.000,-10.125:1]");
        _transport.PushOk();
        var probed = await probe.Ack.WaitAsync(Guard);
        _transport.PushOk();

        Assert.True(probed.Ok);
        Assert.Equal(new Vec3(50, 50, -10.125), probed.Probe!.MachineMm);
        Assert.True(probed.Probe.Contact);
        Assert.Null((await after.Ack.WaitAsync(Guard)).Probe);
        Assert.Equal(probed.Probe, _client.LastProbe);
    }

    [Fact]
    public async Task An_alarm_faults_every_pending_line_and_restarts_counting()
    {
        await ConnectAsync();
        var sent = new[]
        {
            await SendAsync("G1 X10 F500"),
            await SendAsync("G1 X20"),
            await SendAsync("G1 X30"),
        };
        _transport.PushOk();
        var firstAck = await sent[0].Ack.WaitAsync(Guard);
        Assert.True(firstAck.Ok);

        var faultRaised = NextFault();
        _transport.FlushBufferModel();
        _transport.PushLine("ALARM:1");

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.Alarm, fault.Kind);
        Assert.Equal(1, fault.Code);
        foreach (var line in sent.Skip(1))
        {
            var ex = await Assert.ThrowsAsync<GantryFaultException>(() => line.Ack.WaitAsync(Guard));
            Assert.Equal(GantryFaultKind.Alarm, ex.Kind);
            Assert.Equal(1, ex.Code);
        }

        Assert.Equal(1, _client.LastAlarmCode);
        Assert.Equal(0, _client.BytesInFlight);
        Assert.Equal(0, _client.LinesInFlight);
        // grbl still answers the line it was executing; that ok belongs to a line already failed.
        _transport.PushOk();
        // The firmware enforces its own alarm lock; the client still lets $X through.
        var unlock = await SendAsync("$X");
        _transport.PushOk();
        Assert.True((await unlock.Ack.WaitAsync(Guard)).Ok);
        Assert.Single(Faults());
    }

    [Fact]
    public async Task An_alarm_wakes_a_sender_waiting_for_room_which_then_sends_into_the_empty_buffer()
    {
        await ConnectAsync();
        var big = await SendAsync(new string('G', 120));
        var waiting = _client.SendLineAsync("G0 X1 Y2 Z3", CancellationToken.None).AsTask();
        Assert.False(waiting.IsCompleted);

        _transport.FlushBufferModel();
        _transport.PushLine("ALARM:2");

        await Assert.ThrowsAsync<GantryFaultException>(() => big.Ack.WaitAsync(Guard));
        var sent = await waiting.WaitAsync(Guard);
        Assert.Equal(12, _client.BytesInFlight);
        _transport.PushOk(); // the ok grbl sends for the line that raised the alarm, owed to 'big'
        _transport.PushError(9);
        Assert.Equal(9, (await sent.Ack.WaitAsync(Guard)).ErrorCode);
        Assert.False(GrblProtocol.AlarmLosesPosition(_client.LastAlarmCode!.Value));
    }

    [Fact]
    public async Task An_unexpected_banner_faults_pending_lines_with_Reset_and_latches_until_soft_reset()
    {
        await ConnectAsync();
        var a = await SendAsync("G1 X1 F100");
        var b = await SendAsync("G1 X2");

        var faultRaised = NextFault();
        _transport.FlushBufferModel();
        _transport.PushLine(BannerLine);

        Assert.Equal(GantryFaultKind.Reset, (await faultRaised.WaitAsync(Guard)).Kind);
        Assert.Equal(GantryFaultKind.Reset, (await Assert.ThrowsAsync<GantryFaultException>(() => a.Ack.WaitAsync(Guard))).Kind);
        Assert.Equal(GantryFaultKind.Reset, (await Assert.ThrowsAsync<GantryFaultException>(() => b.Ack.WaitAsync(Guard))).Kind);
        var refused = await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G1 X3"));
        Assert.Equal(GantryFaultKind.Reset, refused.Kind);

        var reset = _client.SoftResetAsync(CancellationToken.None);
        await _transport.WaitForByteAsync(0x18);
        _transport.PushLine(BannerLine);
        await reset.WaitAsync(Guard);

        var again = await SendAsync("G1 X3");
        _transport.PushOk();
        Assert.True((await again.Ack.WaitAsync(Guard)).Ok);
        Assert.Single(Faults());
    }

    [Fact]
    public async Task A_line_not_understood_is_a_Protocol_fault()
    {
        await ConnectAsync();
        var pending = await SendAsync("G0 X1");

        var faultRaised = NextFault();
        _transport.PushLine("Hello from nowhere");

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.Protocol, fault.Kind);
        Assert.Contains("Hello from nowhere", fault.Message, StringComparison.Ordinal);
        Assert.Equal(GantryFaultKind.Protocol, (await Assert.ThrowsAsync<GantryFaultException>(() => pending.Ack.WaitAsync(Guard))).Kind);
        await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G0 X2"));
    }

    [Fact]
    public async Task A_garbled_status_report_is_counted_and_dropped_and_the_query_asks_again()
    {
        await ConnectAsync();
        var pending = await SendAsync("G0 X1");
        var garbled = new List<string>();
        _client.GarbledStatusReceived += (_, e) => garbled.Add(e.Text);

        var query = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');
        _transport.PushLine("<Run|MPos:1.5p0,2.500,-0.250|Bf:12,90|FS:600,0>");
        // The query asks again at once and takes the next report.
        await _transport.WaitForByteAsync((byte)'?', 2);
        Assert.False(query.IsCompleted);
        _transport.PushLine("<Run|MPos:1.500,2.500,-0.250|Bf:12,90|FS:600,0>");

        Assert.Equal(new Vec3(1.5, 2.5, -0.25), (await query.WaitAsync(Guard)).MachinePosition);
        Assert.Equal(1, _client.GarbledStatusReports);
        Assert.Equal("<Run|MPos:1.5p0,2.500,-0.250|Bf:12,90|FS:600,0>", _client.LastGarbledStatus);
        Assert.Equal(["<Run|MPos:1.5p0,2.500,-0.250|Bf:12,90|FS:600,0>"], garbled);
        // Nothing else is disturbed: the line in flight is still acknowledged and the link is up.
        _transport.PushOk();
        Assert.True((await pending.Ack.WaitAsync(Guard)).Ok);
        Assert.True(_client.IsConnected);
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task Three_garbled_status_reports_in_a_row_are_a_link_fault()
    {
        await ConnectAsync();
        var pending = await SendAsync("G0 X1");
        var faultRaised = NextFault();

        var query = _client.QueryStatusAsync(CancellationToken.None);
        for (var i = 1; i <= 3; i++)
        {
            await _transport.WaitForByteAsync((byte)'?', i);
            _transport.PushLine("<Idle|MPos:0.000,0.0:0,0.000|Bf:15,128|FS:0,0>");
        }

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.LinkLost, fault.Kind);
        Assert.Contains("3 garbled status reports in a row", fault.Message, StringComparison.Ordinal);
        Assert.Equal(GantryFaultKind.LinkLost, (await Assert.ThrowsAsync<GantryFaultException>(() => query.WaitAsync(Guard))).Kind);
        Assert.Equal(GantryFaultKind.LinkLost, (await Assert.ThrowsAsync<GantryFaultException>(() => pending.Ack.WaitAsync(Guard))).Kind);
        Assert.Equal(3, _client.GarbledStatusReports);
    }

    [Fact]
    public async Task Good_reports_between_garbled_ones_reset_the_run_but_not_the_rate_limit()
    {
        await ConnectAsync();
        var faultRaised = NextFault();
        const string Good = "<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>";
        const string Bad = "<Idle|MPos:0.000,0.000|Bf:15,128|FS:0,0>";
        var asked = 0;
        // Ten garbled reports in a minute, never two in a row, are tolerated ...
        for (var i = 0; i < 10; i++)
        {
            var query = _client.QueryStatusAsync(CancellationToken.None);
            await _transport.WaitForByteAsync((byte)'?', ++asked);
            _transport.PushLine(Bad);
            await _transport.WaitForByteAsync((byte)'?', ++asked);
            _transport.PushLine(Good);
            await query.WaitAsync(Guard);
            _time.Advance(TimeSpan.FromSeconds(5));
        }

        Assert.Empty(Faults());
        // ... the eleventh within the same minute is a link fault.
        var last = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?', ++asked);
        _transport.PushLine(Bad);
        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.LinkLost, fault.Kind);
        Assert.Contains("within a minute", fault.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<GantryFaultException>(() => last.WaitAsync(Guard));
    }

    [Fact]
    public async Task A_status_report_missing_its_closing_bracket_is_not_taken_for_a_garbled_report()
    {
        await ConnectAsync();
        var faultRaised = NextFault();
        _transport.PushLine("<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0");

        Assert.Equal(GantryFaultKind.Protocol, (await faultRaised.WaitAsync(Guard)).Kind);
        Assert.Equal(0, _client.GarbledStatusReports);
    }

    [Fact]
    public async Task After_a_soft_limit_the_trailing_ok_is_consumed_and_the_locked_firmware_is_reset_after_its_deaf_half_second()
    {
        await ConnectAsync();
        var raising = await SendAsync("G0 X100 Y100");
        var faultRaised = NextFault();
        _transport.PushLine("ALARM:2");
        _transport.PushLine("[MSG:Reset to continue]");
        _transport.PushLine("ok");

        Assert.Equal(GantryFaultKind.Alarm, (await faultRaised.WaitAsync(Guard)).Kind);
        Assert.Equal(GantryFaultKind.Alarm, (await Assert.ThrowsAsync<GantryFaultException>(() => raising.Ack.WaitAsync(Guard))).Kind);
        // The trailing ok is consumed: the link is not latched as out of step. But grbl is locked now:
        // it answers nothing, not even '?', so a status query fails at once with the alarm instead of timing out.
        Assert.Equal(2, _client.LockedByAlarm);
        var locked = await Assert.ThrowsAsync<GantryFaultException>(() => _client.QueryStatusAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Equal(GantryFaultKind.Alarm, locked.Kind);
        Assert.Contains("locked after ALARM:2", locked.Message, StringComparison.Ordinal);
        Assert.DoesNotContain((byte)'?', _transport.Written());

        // The reset waits out grbl's deaf half second after the alarm, and is repeated until the banner comes.
        var reset = _client.SoftResetAsync(CancellationToken.None);
        _time.Advance(TimeSpan.FromMilliseconds(599));
        Assert.DoesNotContain((byte)0x18, _transport.Written());
        _time.Advance(TimeSpan.FromMilliseconds(1));
        await _transport.WaitForByteAsync(0x18);
        _time.Advance(Client.ResetRepeatInterval);
        await _transport.WaitForByteAsync(0x18, 2);
        _transport.PushLine(BannerLine);
        Assert.Equal(BannerLine, await reset.WaitAsync(Guard));
        Assert.Null(_client.LockedByAlarm);

        var status = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');
        _transport.PushLine("<Alarm|MPos:-100.000,-100.000,-1.000|Bf:15,128|FS:0,0>");
        Assert.Equal("Alarm", (await status.WaitAsync(Guard)).State);
        Assert.Single(Faults());
        Assert.Equal(2, _client.LastAlarmCode);
    }

    [Fact]
    public async Task An_ok_with_nothing_in_flight_is_a_Protocol_fault()
    {
        await ConnectAsync();
        var faultRaised = NextFault();
        _transport.PushLine("ok");

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.Protocol, fault.Kind);
        // Further stray acks on the latched link are not reported again.
        _transport.PushLine("ok");
        var status = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');
        _transport.PushLine("<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>");
        await status.WaitAsync(Guard);
        Assert.Single(Faults());
    }

    [Fact]
    public async Task Feedback_messages_are_reported_not_faulted()
    {
        await ConnectAsync();
        var messages = new List<string>();
        var got = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _client.MessageReceived += (_, e) =>
        {
            messages.Add(e.Text);
            if (messages.Count == 3)
            {
                got.TrySetResult();
            }
        };

        _transport.PushLine("[MSG:Caution: Unlocked]");
        _transport.PushLine(">G54G21:ok");
        _transport.PushLine("[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]");
        await got.Task.WaitAsync(Guard);

        Assert.Equal(["[MSG:Caution: Unlocked]", ">G54G21:ok", "[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]"], messages);
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task QueryStatus_returns_the_next_report_and_raises_StatusReceived()
    {
        await ConnectAsync();
        var received = new TaskCompletionSource<GrblStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        _client.StatusReceived += (_, e) => received.TrySetResult(e.Status);

        var query = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');
        _time.Advance(TimeSpan.FromMilliseconds(12));
        _transport.PushLine("<Run|MPos:1.500,2.500,-0.250|Bf:12,90|FS:600,0>");

        var status = await query.WaitAsync(Guard);
        Assert.Equal("Run", status.State);
        Assert.Equal(new Vec3(1.5, 2.5, -0.25), status.MachinePosition);
        Assert.Same(status, await received.Task.WaitAsync(Guard));
        Assert.Same(status, _client.LastStatus);
        Assert.Equal(_time.GetTimestamp(), status.ReceivedTimestamp);
        Assert.Equal("?", _transport.WrittenText());
    }

    [Fact]
    public async Task Work_positions_use_the_last_work_offset_seen()
    {
        await ConnectAsync();
        var first = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');
        _transport.PushLine("<Idle|WPos:0.000,0.000,0.000|Bf:15,128|FS:0,0|WCO:5.000,6.000,-7.000>");
        Assert.Equal(new Vec3(5, 6, -7), (await first.WaitAsync(Guard)).MachinePosition);

        var second = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?', 2);
        _transport.PushLine("<Idle|WPos:1.000,1.000,1.000|Bf:15,128|FS:0,0>");
        Assert.Equal(new Vec3(6, 7, -6), (await second.WaitAsync(Guard)).MachinePosition);
    }

    [Fact]
    public async Task QueryStatus_without_a_report_within_the_timeout_is_LinkLost()
    {
        await ConnectAsync();
        var faultRaised = NextFault();
        var query = _client.QueryStatusAsync(CancellationToken.None);
        await _transport.WaitForByteAsync((byte)'?');

        _time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(query.IsCompleted);
        _time.Advance(TimeSpan.FromMilliseconds(1));

        var ex = await Assert.ThrowsAsync<GantryFaultException>(() => query.WaitAsync(Guard));
        Assert.Equal(GantryFaultKind.LinkLost, ex.Kind);
        Assert.Equal(GantryFaultKind.LinkLost, (await faultRaised.WaitAsync(Guard)).Kind);
        Assert.False(_client.IsConnected);
        await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G0 X1"));
    }

    [Fact]
    public async Task Status_polling_queries_at_the_interval_and_detects_silence()
    {
        await ConnectAsync();
        int reports = 0;
        _client.StatusReceived += (_, _) => Interlocked.Increment(ref reports);
        _client.StartStatusPolling(TimeSpan.FromMilliseconds(200));

        Assert.Empty(_transport.Written());
        _time.Advance(TimeSpan.FromMilliseconds(200));
        await _transport.WaitForByteAsync((byte)'?', 1);
        _transport.PushLine("<Idle|MPos:0.000,0.000,0.000|Bf:15,128|FS:0,0>");

        _time.Advance(TimeSpan.FromMilliseconds(200));
        await _transport.WaitForByteAsync((byte)'?', 2);
        // The USB cable is pulled: the port stays "open" but nothing comes back.
        var faultRaised = NextFault();
        _time.Advance(TimeSpan.FromSeconds(1));

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.LinkLost, fault.Kind);
        Assert.Equal(1, Volatile.Read(ref reports));
        Assert.False(_client.IsConnected);
        await _client.StopStatusPollingAsync().WaitAsync(Guard);
        Assert.Single(Faults());
    }

    [Fact]
    public async Task Transport_end_of_stream_is_LinkLost_raised_once()
    {
        await ConnectAsync();
        var pending = await SendAsync("G0 X1");
        var faultRaised = NextFault();

        _transport.EndStream();

        Assert.Equal(GantryFaultKind.LinkLost, (await faultRaised.WaitAsync(Guard)).Kind);
        Assert.Equal(GantryFaultKind.LinkLost, (await Assert.ThrowsAsync<GantryFaultException>(() => pending.Ack.WaitAsync(Guard))).Kind);
        Assert.False(_client.IsConnected);
        await Assert.ThrowsAsync<GantryFaultException>(() => _client.QueryStatusAsync(CancellationToken.None).WaitAsync(Guard));
        await Assert.ThrowsAsync<GantryFaultException>(() => _client.SoftResetAsync(CancellationToken.None).WaitAsync(Guard));
        Assert.Single(Faults());
    }

    [Fact]
    public async Task Transport_read_failure_is_LinkLost()
    {
        await ConnectAsync();
        var faultRaised = NextFault();

        _transport.FailReads(new IOException("device disconnected"));

        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.LinkLost, fault.Kind);
        Assert.Contains("device disconnected", fault.Message, StringComparison.Ordinal);
        Assert.False(_client.IsConnected);
    }

    [Fact]
    public async Task ReadSettings_collects_the_dollar_lines_until_ok()
    {
        await ConnectAsync();
        var read = _client.ReadSettingsAsync(CancellationToken.None);
        await _transport.WaitForLinesAsync(1);
        Assert.Equal("$$\n", _transport.WrittenText());

        _transport.PushLine("$0=10");
        _transport.PushLine("$1=25");
        _transport.PushLine("$22=1");
        _transport.PushLine("$110=8000.000");
        _transport.PushLine("$130=200.000");
        _transport.PushOk();

        var settings = await read.WaitAsync(Guard);
        Assert.Equal(5, settings.Count);
        Assert.Equal("10", settings[0]);
        Assert.Equal("1", settings[22]);
        Assert.Equal("8000.000", settings[110]);
        Assert.Equal("200.000", settings[130]);
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task SoftReset_flushes_pending_lines_without_raising_Faulted()
    {
        await ConnectAsync();
        var a = await SendAsync("G1 Z-1 F100");
        var b = await SendAsync("G4 P0.5");

        var reset = _client.SoftResetAsync(CancellationToken.None);
        await _transport.WaitForByteAsync(0x18);
        var ex = await Assert.ThrowsAsync<GantryFaultException>(() => a.Ack.WaitAsync(Guard));
        Assert.Equal(GantryFaultKind.Reset, ex.Kind);
        Assert.Equal("flushed by soft reset", ex.Message);
        await Assert.ThrowsAsync<GantryFaultException>(() => b.Ack.WaitAsync(Guard));
        Assert.Equal(0, _client.BytesInFlight);
        Assert.Equal(0, _client.LinesInFlight);
        await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G0 X0"));

        // An ok that crossed the reset on the wire belongs to a flushed line: ignored.
        _transport.PushLine("ok");
        _transport.PushLine("GrblHAL 1.1f ['$' or '$HELP' for help]");

        Assert.Equal("GrblHAL 1.1f ['$' or '$HELP' for help]", await reset.WaitAsync(Guard));
        Assert.True(_client.IsConnected);
        var next = await SendAsync("G0 X0");
        _transport.PushLine("ok");
        Assert.True((await next.Ack.WaitAsync(Guard)).Ok);
        Assert.Empty(Faults());
    }

    [Fact]
    public async Task SoftReset_while_moving_records_the_alarm_before_the_banner()
    {
        await ConnectAsync();
        var move = await SendAsync("G1 X50 F1000");

        var faultRaised = NextFault();
        var reset = _client.SoftResetAsync(CancellationToken.None);
        await _transport.WaitForByteAsync(0x18);
        _transport.PushLine("ALARM:3");
        _transport.PushLine(BannerLine);
        _transport.PushLine("[MSG:'$H'|'$X' to unlock]");

        Assert.Equal(BannerLine, await reset.WaitAsync(Guard));
        var fault = await faultRaised.WaitAsync(Guard);
        Assert.Equal(GantryFaultKind.Alarm, fault.Kind);
        Assert.Equal(3, fault.Code);
        Assert.Equal(3, _client.LastAlarmCode);
        Assert.True(GrblProtocol.AlarmLosesPosition(3));
        Assert.Equal(GantryFaultKind.Reset, (await Assert.ThrowsAsync<GantryFaultException>(() => move.Ack.WaitAsync(Guard))).Kind);
        Assert.Single(Faults());
    }

    [Fact]
    public async Task SoftReset_without_a_banner_is_LinkLost()
    {
        await ConnectAsync();
        var faultRaised = NextFault();
        var reset = _client.SoftResetAsync(CancellationToken.None);
        await _transport.WaitForByteAsync(0x18);
        _time.Advance(TimeSpan.FromSeconds(5));

        Assert.Equal(GantryFaultKind.LinkLost, (await Assert.ThrowsAsync<GantryFaultException>(() => reset.WaitAsync(Guard))).Kind);
        Assert.Equal(GantryFaultKind.LinkLost, (await faultRaised.WaitAsync(Guard)).Kind);
    }

    [Fact]
    public async Task Dispose_fails_pending_lines_with_Closed_and_disposes_the_transport()
    {
        await ConnectAsync();
        var pending = await SendAsync("G0 X1");

        await _client.DisposeAsync().AsTask().WaitAsync(Guard);

        Assert.Equal(GantryFaultKind.Closed, (await Assert.ThrowsAsync<GantryFaultException>(() => pending.Ack.WaitAsync(Guard))).Kind);
        Assert.True(_transport.IsDisposed);
        Assert.Equal(GantryFaultKind.Closed, (await Assert.ThrowsAsync<GantryFaultException>(() => SendAsync("G0 X2"))).Kind);
        Assert.Empty(Faults());
    }

    private static TaskCompletionSource<GantryFaultException> NewFaultSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Task<GantryFaultException> NextFault()
    {
        lock (_faultsGate)
        {
            return _nextFault.Task;
        }
    }

    private GantryFaultException[] Faults()
    {
        lock (_faultsGate)
        {
            return [.. _faults];
        }
    }

    private Task<SentLine> SendAsync(string line) => _client.SendLineAsync(line, CancellationToken.None).AsTask().WaitAsync(Guard);

    private async Task ConnectAsync()
    {
        _transport.PushLine(BannerLine);
        await _client.ConnectAsync(CancellationToken.None).WaitAsync(Guard);
    }
}
