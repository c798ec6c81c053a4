using SmpRobot.Controller.Plans;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Plans;

public class ExamplePlanTests
{
    [Fact]
    public void Bad_depth_example_is_rejected_as_documented()
    {
        var path = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "examples", "bad-depth.json");
        var validator = new PlanValidator(TestProfiles.Desk());
        var result = validator.ValidateJson(File.ReadAllText(path));
        Assert.Equal(
            [("d0002", "depth-range"), ("d0003", "pigment-unknown"), ("d0003", "min-spacing")],
            result.Violations.Select(v => (v.DotId, v.Rule)).ToArray());
        Assert.Equal("dot d0002: depth 3.00 mm is outside the needle limits 0.50-2.00 mm", result.Violations[0].Message);
    }
}
