using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Treatment.Design;
using SmpRobot.Treatment.Planning;

namespace SmpRobot.Tests.Treatment;

public class DemoDesignTests
{
    [Fact]
    public void The_bundled_demo_plan_is_what_the_demo_design_plans_for_its_first_session()
    {
        var designPath = Path.Combine(TestProfiles.RepoRoot, "hardware", "designs", "demo-crown.design.json");
        var check = DesignResolver.Resolve(DesignLoader.Load(designPath), TestProfiles.Sim());
        Assert.True(check.IsValid, string.Join("\n", check.Violations));
        var plans = DesignPlans.Build(DesignPlanner.Generate(check.Design!), TestProfiles.Sim());
        var bundled = Plan.Parser.ParseJson(File.ReadAllText(Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json")));
        // Regenerate with: smp design plan hardware/designs/demo-crown.design.json --out DIR; cp DIR/session-1.json hardware/plans/demo-crown.json
        Assert.Equal(JsonFormatter.Default.Format(plans.Sessions[0].Plan), JsonFormatter.Default.Format(bundled));
    }
}
