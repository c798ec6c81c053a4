using Google.Protobuf;
using SmpRobot.Contracts.V1;
using SmpRobot.Controller.Motion;
using SmpRobot.Controller.Plans;
using SmpRobot.Machine;
using static SmpRobot.Tests.Plans.PlanTestData;

namespace SmpRobot.Tests.Plans;

public class PlanValidatorTests
{
    public static TheoryData<string> Profiles => new() { "sim", "desk-200" };

    private static MachineProfile Profile(string name) => name == "sim" ? TestProfiles.Sim() : TestProfiles.Desk();

    private static PlanValidationResult Check(Plan plan) => new PlanValidator(TestProfiles.Desk()).Validate(plan);

    private static PlanRuleViolation Only(PlanValidationResult result, string rule)
    {
        Assert.False(result.IsValid);
        Assert.Equal(1, result.TotalViolations);
        var v = Assert.Single(result.Violations);
        Assert.Equal(rule, v.Rule);
        return v;
    }

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Valid_plan_passes(string profile)
    {
        var result = new PlanValidator(Profile(profile)).Validate(ValidPlan());
        Assert.True(result.IsValid, string.Join("; ", result.Violations));
        Assert.Empty(result.Violations);
    }

    [Theory]
    [MemberData(nameof(Profiles))]
    public void Bundled_demo_plan_is_session_1_of_the_demo_design_in_one_head_position_and_valid(string profile)
    {
        var path = Path.Combine(TestProfiles.RepoRoot, "hardware", "plans", "demo-crown.json");
        var parsed = PlanLoader.ParseFile(path, Profile(profile).MaxPlanBytes);
        Assert.NotNull(parsed.Plan);
        var result = new PlanValidator(Profile(profile)).Validate(parsed.Plan);
        Assert.True(result.IsValid, string.Join("; ", result.Violations));
        Assert.InRange(result.Plan!.Dots.Count, 400, 600);
        Assert.Equal("mm", result.Plan.Units);
        Assert.Equal("demo crown", result.Plan.Source.DesignName);
        Assert.Equal(1u, result.Plan.Source.Session);
        // One head position: the demo never stops to have the head turned.
        Assert.Single(result.Plan.Patches);
    }

    [Fact]
    public void Units_must_be_mm()
    {
        var plan = ValidPlan();
        plan.Units = "inch";
        var v = Only(Check(plan), "units");
        Assert.Equal("", v.DotId);
        Assert.Contains("\"inch\"", v.Message);
    }

    [Fact]
    public void Name_is_at_most_200_characters()
    {
        var plan = ValidPlan();
        plan.Name = new string('n', 200);
        Assert.True(Check(plan).IsValid);
        plan.Name = new string('n', 201);
        Assert.Contains("201 characters", Only(Check(plan), "name").Message);
    }

    [Fact]
    public void Empty_plan_is_rejected()
    {
        var plan = new Plan { Name = "nothing", Units = "mm" };
        Only(Check(plan), "empty-plan");
    }

    [Fact]
    public void Too_many_dots_is_reported_and_other_rules_still_run()
    {
        var profile = TestProfiles.Desk() with { MaxDots = 10 };
        var plan = ValidPlan();
        plan.Dots[3].DepthMm = 5;
        var result = new PlanValidator(profile).Validate(plan);
        Assert.Equal(2, result.TotalViolations);
        Assert.Equal("max-dots", result.Violations[0].Rule);
        Assert.Contains("20 dots", result.Violations[0].Message);
        Assert.Contains("at most 10", result.Violations[0].Message);
        Assert.Equal("depth-range", result.Violations[1].Rule);
    }

    [Fact]
    public void Missing_id_is_named_by_position()
    {
        var plan = ValidPlan();
        plan.Dots[4].Id = "";
        var v = Only(Check(plan), "id-missing");
        Assert.Equal("#5", v.DotId);
        Assert.Contains("dot #5", v.Message);
    }

    [Theory]
    [InlineData("has space")]
    [InlineData("tab\there")]
    [InlineData("é-accent")]
    [InlineData("ctl\u0001")]
    public void Malformed_ids_are_rejected(string id)
    {
        var plan = ValidPlan();
        plan.Dots[2].Id = id;
        var v = Only(Check(plan), "id-format");
        Assert.Equal("#3", v.DotId);
        Assert.Contains("printable ASCII", v.Message);
    }

    [Fact]
    public void Ids_are_1_to_64_characters()
    {
        var plan = ValidPlan();
        plan.Dots[0].Id = new string('a', 64);
        Assert.True(Check(plan).IsValid);
        plan.Dots[0].Id = new string('a', 65);
        Only(Check(plan), "id-format");
    }

    [Fact]
    public void Duplicate_id_names_the_first_use()
    {
        var plan = ValidPlan();
        plan.Dots[7].Id = plan.Dots[1].Id;
        var v = Only(Check(plan), "duplicate-id");
        Assert.Equal("d0002", v.DotId);
        Assert.Contains("dot #2", v.Message);
    }

    [Theory]
    [InlineData("xMm", "NaN")]
    [InlineData("yMm", "Infinity")]
    [InlineData("zMm", "-Infinity")]
    [InlineData("depthMm", "NaN")]
    [InlineData("dwellMs", "Infinity")]
    public void Non_finite_numbers_from_json_strings_are_rejected(string field, string literal)
    {
        // proto3 JSON accepts the strings "NaN", "Infinity" and "-Infinity" for doubles.
        var values = new Dictionary<string, string> { ["xMm"] = "30", ["yMm"] = "30", ["zMm"] = "1", ["depthMm"] = "1", ["dwellMs"] = "200" };
        values[field] = $"\"{literal}\"";
        var dot = "{\"id\":\"bad\",\"pigmentId\":\"charcoal-1\"," + string.Join(",", values.Select(kv => $"\"{kv.Key}\":{kv.Value}")) + "}";
        var json = JsonFormatter.Default.Format(ValidPlan()).Replace("\"dots\": [ ", "\"dots\": [ " + dot + ", ", StringComparison.Ordinal);
        var result = new PlanValidator(TestProfiles.Desk()).ValidateJson(json);
        var v = Only(result, "non-finite");
        Assert.Equal("bad", v.DotId);
        Assert.Contains(field, v.Message);
        Assert.Contains("must be finite", v.Message);
    }

    [Fact]
    public void Depth_outside_the_needle_limits_is_rejected_with_values_and_units()
    {
        var plan = ValidPlan();
        plan.Dots[3].DepthMm = 3;
        var v = Only(Check(plan), "depth-range");
        Assert.Equal("d0004", v.DotId);
        Assert.Equal("dot d0004: depth 3.00 mm is outside the needle limits 0.50-2.00 mm", v.Message);
        plan.Dots[3].DepthMm = 0.49;
        Only(Check(plan), "depth-range");
        plan.Dots[3].DepthMm = 0.5;
        Assert.True(Check(plan).IsValid);
    }

    [Fact]
    public void Dwell_outside_the_limits_is_rejected()
    {
        var plan = ValidPlan();
        plan.Dots[0].DwellMs = 1500;
        var v = Only(Check(plan), "dwell-range");
        Assert.Equal("dot d0001: dwell 1500 ms is outside the dwell limits 50-1000 ms", v.Message);
        plan.Dots[0].DwellMs = -1;
        Only(Check(plan), "dwell-range");
    }

    [Fact]
    public void Unknown_pigment_is_rejected()
    {
        var plan = ValidPlan();
        plan.Dots[5].PigmentId = "sepia";
        var v = Only(Check(plan), "pigment-unknown");
        Assert.Contains("\"sepia\"", v.Message);
        Assert.Contains("charcoal-1", v.Message);
        plan.Dots[5].PigmentId = "";
        Only(Check(plan), "pigment-unknown");
    }

    [Fact]
    public void Dots_closer_than_the_min_spacing_name_both_ids()
    {
        var plan = ValidPlan();
        plan.Dots.Add(Dot("close", 2.3, 1.2));  // 0.36 mm from d0008 at (2, 1)
        var v = Only(Check(plan), "min-spacing");
        Assert.Equal("close", v.DotId);
        Assert.Contains("d0008", v.Message);
        Assert.Contains("0.36 mm", v.Message);
        Assert.Contains("0.50 mm", v.Message);
    }

    [Fact]
    public void Min_spacing_is_xy_only_and_exact_spacing_passes()
    {
        var plan = ValidPlan();
        var far = Dot("above", 10, 10);
        var near = Dot("below", 10, 10.5);  // exactly the min spacing
        near.ZMm = 5;
        plan.Dots.Add(far);
        plan.Dots.Add(near);
        Assert.True(Check(plan).IsValid);
        plan.Dots[^1].YMm = 10.2;
        plan.Dots[^1].XMm = 10;
        Only(Check(plan), "min-spacing");
    }

    [Fact]
    public void Many_identical_dots_are_all_reported_quickly()
    {
        var plan = new Plan { Name = "pile", Units = "mm" };
        for (var i = 0; i < 30_000; i++)
        {
            plan.Dots.Add(Dot($"p{i}", 1, 1));
        }
        var result = Check(plan);
        Assert.Equal(29_999, result.TotalViolations);
        Assert.Equal(PlanValidator.MaxListedViolations, result.Violations.Count);
        Assert.All(result.Violations, v => Assert.Equal("min-spacing", v.Rule));
        Assert.Contains("from dot p0", result.Violations[0].Message);
    }

    [Theory]
    // desk-200: head origin at gantry (-100, -100, -20), envelope [-200, 0] x [-200, 0] x [-40, 0] (grbl's negative space).
    [InlineData(150, -10, 1, "at hover height")]   // gantry X 50 > 0
    [InlineData(-10, -101, 1, "at hover height")]  // gantry Y -201 < -200
    [InlineData(-10, -10, 19, "at hover height")]  // hover at gantry Z -20 + 19 + 1.5 = 0.5 > 0; depth at -2 is fine
    [InlineData(-10, -10, -19.5, "at depth")]      // depth at gantry Z -20 - 19.5 - 1 = -40.5 < -40
    [InlineData(-10, -10, -19, null)]              // depth exactly at gantry Z -40: inside
    [InlineData(-100, 100, -19, null)]             // the corner (-200, 0, -40): inside
    public void Targets_outside_the_envelope_are_rejected(double xMm, double yMm, double zMm, string? where)
    {
        var plan = ValidPlan();
        var dot = Dot("edge", xMm, yMm);
        dot.ZMm = zMm;
        plan.Dots.Add(dot);
        var result = Check(plan);
        if (where is null)
        {
            Assert.True(result.IsValid, string.Join("; ", result.Violations));
            return;
        }
        var v = Only(result, "envelope");
        Assert.Equal("edge", v.DotId);
        Assert.Contains("outside the envelope (x -200..0, y -200..0, z -40..0 mm)", v.Message);
        Assert.Contains(where, v.Message);
    }

    [Fact]
    public void Envelope_uses_the_fixed_head_yaw()
    {
        // Yaw 90°: head +X maps to gantry +Y. x = 90 mm stays inside (gantry Y -10), x = -120 leaves (Y -220).
        var profile = TestProfiles.Desk() with { FixedHead = new FixedHeadPose(-100, -100, -20, 90) };
        var plan = ValidPlan();
        plan.Dots.Add(Dot("far-x", 90, 0));
        Assert.True(new PlanValidator(profile).Validate(plan).IsValid);
        plan.Dots.Add(Dot("neg-x", -120, 0));
        Only(new PlanValidator(profile).Validate(plan), "envelope");
    }

    [Fact]
    public void At_most_50_violations_are_listed_in_dot_order_with_the_true_total()
    {
        var plan = ValidPlan();
        plan.Units = "cm";
        for (var i = 0; i < plan.Dots.Count; i++)
        {
            plan.Dots[i].DepthMm = 9;       // 20 depth-range
            plan.Dots[i].DwellMs = 5000;    // 20 dwell-range
            plan.Dots[i].PigmentId = "x";   // 20 pigment-unknown
        }
        var result = Check(plan);
        Assert.Equal(61, result.TotalViolations);
        Assert.Equal(50, result.Violations.Count);
        Assert.Equal("units", result.Violations[0].Rule);
        var dotOrder = result.Violations.Skip(1).Select(v => int.Parse(v.DotId[1..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(dotOrder.Order().ToList(), dotOrder);
        Assert.False(result.IsValid);
    }

    [Fact]
    public void ValidateJson_reports_parse_errors_and_the_profile_size_limit()
    {
        var profile = TestProfiles.Desk() with { MaxPlanBytes = 100 };
        var validator = new PlanValidator(profile);
        var json = JsonFormatter.Default.Format(ValidPlan());
        var big = validator.ValidateJson(json);
        Assert.Equal("file-size", Assert.Single(big.Violations).Rule);
        var bad = new PlanValidator(TestProfiles.Desk()).ValidateJson("{");
        Assert.Equal("json", Assert.Single(bad.Violations).Rule);
        var good = new PlanValidator(TestProfiles.Desk()).ValidateJson(json);
        Assert.True(good.IsValid);
    }
}
