using SmpRobot.Contracts.V1;

namespace SmpRobot.Tests.Plans;

/// <summary>Small hand-made plans for rule tests.</summary>
internal static class PlanTestData
{
    /// <summary>A valid dot on both bundled profiles (head origin maps to the table centre).</summary>
    public static Dot Dot(string id, double xMm, double yMm) => new()
    {
        Id = id,
        XMm = xMm,
        YMm = yMm,
        ZMm = 1.0,
        DepthMm = 1.0,
        DwellMs = 200,
        PigmentId = "charcoal-1",
    };

    /// <summary>A valid plan: a 5 x 4 grid of dots 1 mm apart.</summary>
    public static Plan ValidPlan()
    {
        var plan = new Plan { Name = "grid", Units = "mm" };
        for (var i = 0; i < 20; i++)
        {
            plan.Dots.Add(Dot($"d{i + 1:D4}", i % 5, i / 5));
        }
        return plan;
    }
}
