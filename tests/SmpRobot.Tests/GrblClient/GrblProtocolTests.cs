using SmpRobot.Controller.Gantry;
using SmpRobot.Geometry;

namespace SmpRobot.Tests.GrblClient;

public class GrblProtocolTests
{
    [Fact]
    public void Parses_the_default_grbl_1_1_idle_report()
    {
        var status = GrblProtocol.ParseStatus("<Idle|MPos:1.000,2.000,3.000|Bf:15,128|FS:0,0>", 4242);

        Assert.NotNull(status);
        Assert.Equal("Idle", status.State);
        Assert.True(status.IsIdle);
        Assert.Equal(new Vec3(1, 2, 3), status.MachinePosition);
        Assert.Equal(15, status.PlannerBlocksFree);
        Assert.Equal(128, status.RxBytesFree);
        Assert.Equal(0, status.FeedMmPerMin);
        Assert.Equal(0, status.SpindleSpeed);
        Assert.Equal(4242, status.ReceivedTimestamp);
    }

    [Theory]
    // Running with overrides and a spindle.
    [InlineData("<Run|MPos:10.500,-2.250,0.000|Bf:14,100|FS:1500,8000|Ov:100,100,100>", "Run", 10.5, -2.25, 0.0, 14, 100, 1500.0, 8000.0)]
    // Feed hold with a work offset refresh; MPos wins, WCO is only remembered.
    [InlineData("<Hold:0|MPos:5.000,5.000,-1.000|Bf:15,127|FS:0,0|WCO:1.000,1.000,1.000>", "Hold:0", 5.0, 5.0, -1.0, 15, 127, 0.0, 0.0)]
    // $10=0 style: work position plus WCO in the same report gives the machine position.
    [InlineData("<Jog|WPos:1.000,2.000,3.000|Bf:15,128|FS:500,0|WCO:10.000,20.000,30.000>", "Jog", 11.0, 22.0, 33.0, 15, 128, 500.0, 0.0)]
    // No buffer field, feed-only field (variable spindle disabled).
    [InlineData("<Idle|MPos:0.000,0.000,0.000|F:250>", "Idle", 0.0, 0.0, 0.0, -1, -1, 250.0, 0.0)]
    // Alarm with limit pins and a line number.
    [InlineData("<Alarm|MPos:0.000,-0.003,0.000|Bf:15,128|FS:0,0|Pn:XYZ|Ln:12>", "Alarm", 0.0, -0.003, 0.0, 15, 128, 0.0, 0.0)]
    // grblHAL: four axes, three FS values, accessory and unknown fields.
    [InlineData("<Idle|MPos:1.000,2.000,3.000,4.000|Bf:35,1024|FS:0,0,0|Pn:Y|WCO:0.000,0.000,0.000|Ov:100,100,100|A:M|Foo:bar>", "Idle", 1.0, 2.0, 3.0, 35, 1024, 0.0, 0.0)]
    // Door sub-state, fields in another order.
    [InlineData("<Door:1|FS:0,0|Bf:15,128|MPos:7.125,0.000,-2.500>", "Door:1", 7.125, 0.0, -2.5, 15, 128, 0.0, 0.0)]
    public void Parses_real_world_variants(string line, string state, double x, double y, double z, int blocks, int rxFree, double feed, double speed)
    {
        var status = GrblProtocol.ParseStatus(line, 1);

        Assert.NotNull(status);
        Assert.Equal(state, status.State);
        Assert.Equal(x, status.MachinePosition.X, 9);
        Assert.Equal(y, status.MachinePosition.Y, 9);
        Assert.Equal(z, status.MachinePosition.Z, 9);
        Assert.Equal(blocks, status.PlannerBlocksFree);
        Assert.Equal(rxFree, status.RxBytesFree);
        Assert.Equal(feed, status.FeedMmPerMin, 9);
        Assert.Equal(speed, status.SpindleSpeed, 9);
    }

    [Fact]
    public void Hold_door_and_alarm_flags_follow_the_state()
    {
        Assert.True(GrblProtocol.ParseStatus("<Hold:1|MPos:0.000,0.000,0.000>", 0)!.IsHold);
        Assert.True(GrblProtocol.ParseStatus("<Door:0|MPos:0.000,0.000,0.000>", 0)!.IsHold);
        Assert.True(GrblProtocol.ParseStatus("<Alarm|MPos:0.000,0.000,0.000>", 0)!.IsAlarm);
        Assert.False(GrblProtocol.ParseStatus("<Run|MPos:0.000,0.000,0.000>", 0)!.IsHold);
    }

    [Theory]
    [InlineData("")]
    [InlineData("Idle|MPos:1.000,2.000,3.000")]
    [InlineData("<Idle|MPos:1.000,2.000,3.000")]
    [InlineData("<>")]
    [InlineData("<|MPos:1.000,2.000,3.000>")]
    [InlineData("<Idle>")]
    [InlineData("<Idle|Bf:15,128|FS:0,0>")]
    [InlineData("<Idle|MPos:1.000,2.000>")]
    [InlineData("<Idle|MPos:1.000,x,3.000>")]
    [InlineData("<Idle|MPos:1.000,,3.000>")]
    [InlineData("<Idle|MPos:1e3,2.000,3.000>")]
    [InlineData("<Idle|MPos:NaN,2.000,3.000>")]
    [InlineData("<Idle,MPos:0.000,0.000,0.000,WPos:0.000,0.000,0.000>")] // grbl 0.9 format
    [InlineData("<Idle|WPos:1.000,2.000,3.000|Bf:15,128>")] // work position without any offset
    [InlineData("<Idle|MPos:1.000,2.000,3.000|Bf:15>")]
    [InlineData("<Idle|MPos:1.000,2.000,3.000|Bf:a,128>")]
    [InlineData("<Idle|MPos:1.000,2.000,3.000|FS:1,2,3,4>")]
    [InlineData("<Idle|MPos:1.000,2.000,3.000|garbage>")]
    [InlineData("<Id le|MPos:1.000,2.000,3.000>")]
    [InlineData("<Hold:|MPos:1.000,2.000,3.000>")]
    [InlineData("<Hold:x|MPos:1.000,2.000,3.000>")]
    public void Malformed_reports_are_null(string line)
    {
        Assert.Null(GrblProtocol.ParseStatus(line, 0));
    }

    [Theory]
    [InlineData("Grbl 1.1h ['$' for help]")]
    [InlineData("Grbl 1.1f ['$' for help]")]
    [InlineData("GrblHAL 1.1f ['$' or '$HELP' for help]")]
    [InlineData("Grbl 0.9j ['$' for help]")]
    public void Recognises_welcome_banners(string line)
    {
        Assert.True(GrblProtocol.IsBanner(line));
    }

    [Theory]
    [InlineData("ok")]
    [InlineData("Grbl")]
    [InlineData("Grbl 1.1h")]
    [InlineData("grbl 1.1h ['$' for help]")]
    [InlineData("GrblX 1.1h ['$' for help]")]
    [InlineData("Grbl v1.1h ['$' for help]")]
    [InlineData("[MSG:Grbl 1.1h ['$' for help]]")]
    [InlineData("[VER:1.1h.20190825:]")]
    [InlineData("<Idle|MPos:0.000,0.000,0.000>")]
    public void Other_lines_are_not_banners(string line)
    {
        Assert.False(GrblProtocol.IsBanner(line));
    }

    [Fact]
    public void Every_grbl_1_1_error_code_has_a_meaning()
    {
        int[] codes = [.. Enumerable.Range(1, 17), .. Enumerable.Range(20, 19)];
        foreach (var code in codes)
        {
            var text = GrblProtocol.ErrorText(code);
            Assert.False(string.IsNullOrWhiteSpace(text));
            Assert.False(text.StartsWith("unknown error", StringComparison.Ordinal), text);
        }

        Assert.Contains("feed rate", GrblProtocol.ErrorText(22), StringComparison.Ordinal);
        Assert.Contains("locked", GrblProtocol.ErrorText(9), StringComparison.Ordinal);
        Assert.Equal("unknown error 99", GrblProtocol.ErrorText(99));
        Assert.Equal("unknown error 0", GrblProtocol.ErrorText(0));
        // Distinct meanings, not one text for all.
        Assert.Equal(codes.Length, codes.Select(GrblProtocol.ErrorText).Distinct().Count());
    }

    [Fact]
    public void Every_grbl_alarm_and_the_grblhal_extras_have_a_meaning()
    {
        for (int code = 1; code <= 11; code++)
        {
            Assert.False(GrblProtocol.AlarmText(code).StartsWith("unknown alarm", StringComparison.Ordinal));
        }

        Assert.Contains("hard limit", GrblProtocol.AlarmText(1), StringComparison.Ordinal);
        Assert.Contains("emergency stop", GrblProtocol.AlarmText(10), StringComparison.Ordinal);
        Assert.Equal("unknown alarm 77", GrblProtocol.AlarmText(77));
    }

    [Theory]
    [InlineData(1, true)]
    [InlineData(2, false)]
    [InlineData(3, true)]
    [InlineData(4, false)]
    [InlineData(5, false)]
    [InlineData(6, true)]
    [InlineData(7, true)]
    [InlineData(8, true)]
    [InlineData(9, true)]
    [InlineData(10, true)]
    [InlineData(11, true)]
    [InlineData(77, true)] // unknown: assume the worst
    public void Alarms_that_lose_position(int code, bool losesPosition)
    {
        Assert.Equal(losesPosition, GrblProtocol.AlarmLosesPosition(code));
    }

    [Theory]
    [InlineData((byte)'?', true)]
    [InlineData((byte)'!', true)]
    [InlineData((byte)'~', true)]
    [InlineData((byte)0x18, true)]
    [InlineData((byte)0x80, true)]
    [InlineData((byte)0x85, true)]
    [InlineData((byte)0xFF, true)]
    [InlineData((byte)'G', false)]
    [InlineData((byte)'$', false)]
    [InlineData((byte)'\n', false)]
    [InlineData((byte)0x7F, false)]
    public void Realtime_bytes(byte value, bool realtime)
    {
        Assert.Equal(realtime, GrblProtocol.IsRealtimeByte(value));
    }
}
