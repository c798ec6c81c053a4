using SmpRobot.Controller.Gantry.Simulation;

namespace SmpRobot.Tests.Faults;

public class FaultPlanTests
{
    [Fact]
    public void Parses_every_fault_and_reads_its_own_text_back()
    {
        var plan = FaultPlan.Parse(" drop=0.001, drop-at-line=12,flip=0.5,flip-at-line=3, delay-ok=2.5,lose-ok-at-line=40,alarm-at-dot=4,reset-at-dot=5,rx=100,stall-at-dot=6:250,disconnect-at-dot=7,garble-status=0.25,garble-status-at-dot=8:3,homing-fail=9,seed=42 ");
        Assert.Equal(0.001, plan.DropProbability);
        Assert.Equal(12, plan.DropAtLine);
        Assert.Equal(0.5, plan.FlipProbability);
        Assert.Equal(3, plan.FlipAtLine);
        Assert.Equal(2.5, plan.DelayOkMs);
        Assert.Equal(40, plan.LoseOkAtLine);
        Assert.Equal(4, plan.AlarmAtDot);
        Assert.Equal(5, plan.ResetAtDot);
        Assert.Equal(100, plan.RxBufferBytes);
        Assert.Equal(6, plan.StallAtDot);
        Assert.Equal(250, plan.StallMs);
        Assert.Equal(7, plan.DisconnectAtDot);
        Assert.Equal(0.25, plan.GarbleStatusProbability);
        Assert.Equal(8, plan.GarbleStatusAtDot);
        Assert.Equal(3, plan.GarbleStatusCount);
        Assert.Equal(9, plan.HomingFailAlarm);
        Assert.Equal(42, plan.Seed);
        Assert.False(plan.IsEmpty);
        Assert.Equal(plan, FaultPlan.Parse(plan.ToString()));
    }

    [Fact]
    public void Defaults_seed_one_an_empty_spec_injects_nothing_and_a_stall_without_ms_lasts_forever()
    {
        var empty = FaultPlan.Parse("");
        Assert.True(empty.IsEmpty);
        Assert.Equal(1, empty.Seed);
        Assert.Equal("", empty.ToString());
        var stall = FaultPlan.Parse("stall-at-dot=3");
        Assert.Equal(3, stall.StallAtDot);
        Assert.Null(stall.StallMs);
        Assert.Equal("stall-at-dot=3", stall.ToString());
        Assert.Equal(1, stall.Seed);
        Assert.True(FaultPlan.Parse("seed=9").IsEmpty);
    }

    [Theory]
    [InlineData("wobble=3", "unknown fault 'wobble'")]
    [InlineData("drop=1.5", "probability")]
    [InlineData("drop=abc", "probability")]
    [InlineData("flip=-0.1", "probability")]
    [InlineData("drop-at-line=0", ">= 1")]
    [InlineData("alarm-at-dot=two", "whole number")]
    [InlineData("rx=1", ">= 2")]
    [InlineData("delay-ok=-5", "milliseconds")]
    [InlineData("delay-ok=NaN", "milliseconds")]
    [InlineData("stall-at-dot=2:x", "milliseconds")]
    [InlineData("stall-at-dot=:100", "whole number")]
    [InlineData("drop", "'drop' needs a value")]
    [InlineData("garble-status=2", "probability")]
    [InlineData("homing-fail=4", ">= 8")]
    [InlineData("homing-fail=10", "alarm 8 or 9")]
    [InlineData("garble-status-at-dot=3:0", ">= 1")]
    [InlineData("reset-at-dot=2,reset-at-dot=3", "given twice")]
    [InlineData("drop=0.1,,flip=0.1", "empty item")]
    public void Bad_specs_are_refused_with_the_list_of_known_faults(string spec, string expected)
    {
        var e = Assert.Throws<ArgumentException>(() => FaultPlan.Parse(spec));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains(spec, e.Message, StringComparison.Ordinal);
        foreach (var known in FaultPlan.KnownFaults) Assert.Contains(known, e.Message, StringComparison.Ordinal);
    }
}
