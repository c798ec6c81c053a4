using System.Text;
using Google.Protobuf;
using SmpRobot.Controller.Plans;
using SmpRobot.Machine;

namespace SmpRobot.Tests.Plans;

public sealed class PlanLoaderTests : IDisposable
{
    private const long MaxBytes = 8 * 1024 * 1024;
    private readonly string _dir = Directory.CreateTempSubdirectory("smp-plans-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static void AssertOneViolation(PlanValidationResult result, string rule, string messagePart)
    {
        Assert.Null(result.Plan);
        Assert.False(result.IsValid);
        Assert.Equal(1, result.TotalViolations);
        var v = Assert.Single(result.Violations);
        Assert.Equal(rule, v.Rule);
        Assert.Equal("", v.DotId);
        Assert.Contains(messagePart, v.Message, StringComparison.OrdinalIgnoreCase);
        // One readable line, never a stack trace.
        Assert.DoesNotContain("\n", v.Message);
        Assert.DoesNotContain("   at ", v.Message);
    }

    [Fact]
    public void Canonical_json_round_trips()
    {
        var plan = PlanTestData.ValidPlan();
        var result = PlanLoader.Parse(JsonFormatter.Default.Format(plan), MaxBytes);
        Assert.Equal(0, result.TotalViolations);
        Assert.Equal(plan, result.Plan);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   \n\t ")]
    public void Empty_text_is_one_violation(string json) => AssertOneViolation(PlanLoader.Parse(json, MaxBytes), "empty", "empty");

    [Theory]
    [InlineData("{\"name\":\"x\",\"units\":\"mm\",\"dots\":[{\"id\":\"a\",}]}")]  // trailing comma
    [InlineData("not json at all")]
    [InlineData("[1, 2, 3]")]                                                     // not an object
    [InlineData("{\"name\":\"x\" \"units\":\"mm\"}")]                              // missing comma
    public void Malformed_json_is_one_violation(string json) => AssertOneViolation(PlanLoader.Parse(json, MaxBytes), "json", "not valid plan JSON");

    [Fact]
    public void Truncated_file_is_one_violation()
    {
        var full = JsonFormatter.Default.Format(PlanTestData.ValidPlan());
        var path = Path.Combine(_dir, "truncated.json");
        File.WriteAllText(path, full[..(full.Length / 2)]);
        AssertOneViolation(PlanLoader.ParseFile(path, MaxBytes), "json", "not valid plan JSON");
    }

    [Fact]
    public void Empty_file_is_one_violation()
    {
        var path = Path.Combine(_dir, "empty.json");
        File.WriteAllBytes(path, []);
        AssertOneViolation(PlanLoader.ParseFile(path, MaxBytes), "empty", "empty");
    }

    [Fact]
    public void Missing_file_is_one_violation() =>
        AssertOneViolation(PlanLoader.ParseFile(Path.Combine(_dir, "nope.json"), MaxBytes), "file", "does not exist");

    [Fact]
    public void Sparse_1_gb_file_is_rejected_by_size_without_reading_it()
    {
        var path = Path.Combine(_dir, "huge.json");
        using (var stream = new FileStream(path, FileMode.CreateNew))
        {
            stream.SetLength(1L << 30);
        }
        var before = GC.GetTotalAllocatedBytes(precise: true);
        var result = PlanLoader.ParseFile(path, MaxBytes);
        var allocated = GC.GetTotalAllocatedBytes(precise: true) - before;
        AssertOneViolation(result, "file-size", "1073741824 bytes");
        Assert.Contains("8388608", result.Violations[0].Message);
        // Reading even the allowed 8 MB would allocate more than this.
        Assert.True(allocated < 1024 * 1024, $"allocated {allocated} bytes");
    }

    [Fact]
    public void Oversized_text_is_rejected_by_utf8_size()
    {
        // 100 'é' are 200 UTF-8 bytes although only 100 chars.
        var json = "{\"name\":\"" + new string('é', 100) + "\"}";
        var ok = PlanLoader.Parse(json, Encoding.UTF8.GetByteCount(json));
        Assert.NotNull(ok.Plan);
        AssertOneViolation(PlanLoader.Parse(json, json.Length + 50), "file-size", "bytes");
    }

    [Fact]
    public void Json_bomb_of_nested_arrays_is_one_violation()
    {
        const int depth = 100_000;
        var bomb = "{\"dots\":" + new string('[', depth) + new string(']', depth) + "}";
        AssertOneViolation(PlanLoader.Parse(bomb, MaxBytes), "json", "not valid plan JSON");
        var bareBomb = new string('[', depth) + new string(']', depth);
        AssertOneViolation(PlanLoader.Parse(bareBomb, MaxBytes), "json", "not valid plan JSON");
    }

    [Fact]
    public void Json_bomb_of_nested_objects_in_an_unknown_field_is_one_violation()
    {
        const int depth = 100_000;
        var bomb = "{\"extra\":" + string.Concat(Enumerable.Repeat("{\"a\":", depth)) + "1" + new string('}', depth) + "}";
        AssertOneViolation(PlanLoader.Parse(bomb, MaxBytes), "json", "not valid plan JSON");
    }

    [Theory]
    [InlineData("{\"units\":\"mm\",\"dots\":[{\"id\":\"a\",\"xMm\":\"left\"}]}")]   // string for a number
    [InlineData("{\"units\":\"mm\",\"dots\":[{\"id\":\"a\",\"xMm\":[1]}]}")]        // array for a number
    [InlineData("{\"units\":\"mm\",\"dots\":{\"id\":\"a\"}}")]                     // object for the dot list
    [InlineData("{\"units\":\"mm\",\"dots\":[[1,2]]}")]                            // array for a dot
    [InlineData("{\"units\":\"mm\",\"dots\":[{\"id\":7}]}")]                        // number for a string
    [InlineData("{\"units\":\"mm\",\"dots\":\"d1\"}")]                              // string for the dot list
    public void Wrong_types_are_one_violation(string json) => AssertOneViolation(PlanLoader.Parse(json, MaxBytes), "json", "not valid plan JSON");

    [Theory]
    [InlineData("{\"units\":\"mm\",\"colour\":\"red\"}")]
    [InlineData("{\"units\":\"mm\",\"dots\":[{\"id\":\"a\",\"x\":1}]}")]
    public void Unknown_fields_are_one_violation(string json)
    {
        var result = PlanLoader.Parse(json, MaxBytes);
        AssertOneViolation(result, "json", "not valid plan JSON");
    }

    [Theory]
    [InlineData("null")]
    [InlineData("123")]
    [InlineData("\"plan\"")]
    [InlineData("{\"dots\":[{\"xMm\":1e400}]}")]
    [InlineData("{\"dots\":[{\"xMm\":\"1e400\"}]}")]
    [InlineData("{\"name\":\"\\uD800\"}")]
    [InlineData("{\"name\":\"a\",\"name\":\"b\"}")]
    [InlineData("{\"dots\":[{\"dwellMs\":-}]}")]
    [InlineData("{\"dots\":[{\"id\":\"a\"}]} trailing")]
    [InlineData("\u0000")]
    public void Odd_inputs_never_throw(string json)
    {
        var result = PlanLoader.Parse(json, MaxBytes);
        if (result.Plan is null)
        {
            AssertOneViolation(result, "json", "not valid plan JSON");
        }
        else
        {
            Assert.Equal(0, result.TotalViolations);
        }
    }

    [Fact]
    public void Numbers_as_strings_and_proto_field_names_are_accepted_as_proto3_json_allows()
    {
        var result = PlanLoader.Parse("{\"units\":\"mm\",\"dots\":[{\"id\":\"a\",\"x_mm\":1.5,\"yMm\":\"2.5\"}]}", MaxBytes);
        Assert.NotNull(result.Plan);
        Assert.Equal(1.5, result.Plan.Dots[0].XMm);
        Assert.Equal(2.5, result.Plan.Dots[0].YMm);
    }

    [Fact]
    public void Non_finite_strings_parse_so_that_the_validator_can_name_them()
    {
        var result = PlanLoader.Parse("{\"units\":\"mm\",\"dots\":[{\"id\":\"a\",\"xMm\":\"NaN\",\"yMm\":\"Infinity\"}]}", MaxBytes);
        Assert.NotNull(result.Plan);
        Assert.True(double.IsNaN(result.Plan.Dots[0].XMm));
        Assert.True(double.IsPositiveInfinity(result.Plan.Dots[0].YMm));
    }

    [Fact]
    public void File_with_bom_parses()
    {
        var path = Path.Combine(_dir, "bom.json");
        File.WriteAllText(path, JsonFormatter.Default.Format(PlanTestData.ValidPlan()), new UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
        var result = PlanLoader.ParseFile(path, MaxBytes);
        Assert.Equal(0, result.TotalViolations);
        Assert.Equal(20, result.Plan!.Dots.Count);
    }

    [Fact]
    public void File_that_is_not_utf8_is_one_violation()
    {
        var path = Path.Combine(_dir, "latin1.json");
        File.WriteAllBytes(path, [(byte)'{', 0xE9, 0xFF, (byte)'}']);
        AssertOneViolation(PlanLoader.ParseFile(path, MaxBytes), "json", "UTF-8");
    }
}

public class PlanJsonPositionTests
{
    private static string Message(string json) => SmpRobot.Machine.PlanLoader.Parse(json, 1 << 20).Violations.Single().Message;

    [Fact]
    public void An_unknown_field_is_named_with_its_line_and_column_and_the_field_meant()
    {
        var json = "{\n  \"name\": \"crown\",\n  \"units\": \"mm\",\n  \"dots\": [\n    {\"id\": \"d1\", \"xMm\": 0, \"yMm\": 0, \"zMm\": 1, \"depth\": 1, \"dwellMs\": 200, \"pigmentId\": \"charcoal-1\"}\n  ]\n}";
        var message = Message(json);
        Assert.Contains("line 5, column 48", message);
        Assert.Contains("\"depth\" is not a field of Dot; did you mean \"depthMm\"?", message);
        Assert.Contains("\"dotz\" is not a field of Plan; did you mean \"dots\"?", Message("{\"name\":\"x\",\"dotz\":[]}"));
    }

    [Fact]
    public void Syntax_and_type_errors_carry_their_position()
    {
        Assert.Contains("line 2, column", Message("{\"name\": \"x\",\n  \"dots\": [ {\"id\": \"d1\",, } ]}"));
        var typed = Message("{\"name\": \"x\",\n\"dots\": [{\"id\": \"d1\", \"xMm\": \"left\"}]}");
        Assert.Contains("line 2, column", typed);
        Assert.Contains("\"xMm\" must be a number, not \"left\"", typed);
    }
}
