using Microsoft.Extensions.Time.Testing;
using SmpRobot.Controller.Gantry;

namespace SmpRobot.Tests.Unit;

public class MachineActivityTests
{
    [Fact]
    public void An_activity_counts_its_steps_and_an_inner_one_gives_the_outer_back_with_its_progress()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 3, 14, 0, 0, TimeSpan.Zero));
        var activity = new MachineActivity(time);
        Assert.Null(activity.Current);

        using (var calibration = activity.Begin("gantry calibration", 15))
        {
            calibration.Doing("stop 1: moving");
            calibration.StepDone();
            Assert.Equal(("gantry calibration", 1, 15, "stop 1: moving"), (activity.Current!.Name, activity.Current.StepsDone, activity.Current.StepsTotal, activity.Current.Step));
            using (var homing = activity.Begin("homing"))
            {
                calibration.StepDone(); // an outer step while the inner one shows is kept
                Assert.Equal("homing", activity.Current!.Name);
                Assert.Equal(0, activity.Current.StepsTotal);
            }
            Assert.Equal(("gantry calibration", 2), (activity.Current!.Name, activity.Current.StepsDone));
            calibration.SetTotal(19);
            Assert.Equal(19, activity.Current.StepsTotal);
            Assert.Equal(time.GetUtcNow(), activity.Current.StartedAt);
        }
        Assert.Null(activity.Current);
        Assert.Throws<ArgumentOutOfRangeException>(() => activity.Begin("jog", -1));
    }
}
