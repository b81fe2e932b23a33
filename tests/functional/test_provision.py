"""The emulator's resources come from infra/template.json, as CloudFormation would make them."""
from __future__ import annotations

import json

import pytest

from infra.local.provision import Context, Provisioner
from infra.template import render


def test_every_template_resource_exists_with_its_wiring(stack):
    ddb, s3, sqs, sfn = (stack.aws(s) for s in ("dynamodb", "s3", "sqs", "stepfunctions"))
    tags = ddb.describe_table(TableName=stack.variables["PIXELPOOL_TAGS_TABLE"])["Table"]
    assert [i["IndexName"] for i in tags["GlobalSecondaryIndexes"]] == ["by_name"]
    for variable in ("PIXELPOOL_USERS_TABLE", "PIXELPOOL_ACTIVITY_TABLE"):
        ddb.describe_table(TableName=stack.variables[variable])
    share = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    notifications = s3.get_bucket_notification_configuration(Bucket=share)["QueueConfigurations"]
    assert {tuple(n["Events"]) for n in notifications} == {("s3:ObjectCreated:*",), ("s3:ObjectRemoved:*",)}
    assert {n["QueueArn"] for n in notifications} == {stack.physical["IngestQueue"]["Arn"]}
    assert s3.get_bucket_versioning(Bucket=stack.variables["PIXELPOOL_DATASETS_BUCKET"])["Status"] == "Enabled"
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"],
                                                  AttributeNames=["RedrivePolicy"])["Attributes"]["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == stack.physical["IngestDeadLetterQueue"]["Arn"]
    assert int(redrive["maxReceiveCount"]) == 5
    definition = sfn.describe_state_machine(stateMachineArn=stack.variables["PIXELPOOL_SELFCHECK_STATE_MACHINE"])["definition"]
    assert "${" not in definition
    assert "function:pixelpool-dev-PlanSelfcheck" in definition


def test_function_environment_is_the_templates_globals(stack):
    globals_ = render()["Globals"]["Function"]["Environment"]["Variables"]
    local_auth = {"PIXELPOOL_JWKS_URL", "PIXELPOOL_JWT_AUDIENCE", "PIXELPOOL_JWT_ISSUER"}
    assert set(globals_) - local_auth <= set(stack.variables)
    assert stack.variables["PIXELPOOL_JWT_ISSUER"] == stack.issuer.issuer


def test_unknown_resource_types_are_refused(stack):
    template = {"Resources": {"Server": {"Type": "AWS::EC2::Instance", "Properties": {}}}}
    provisioner = Provisioner(stack.aws, Context(stack="x", region="us-east-1", account="123456789012"))
    with pytest.raises(ValueError, match="AWS::EC2::Instance"):
        provisioner.apply(template)


def test_intrinsics_resolve_against_local_names():
    context = Context(stack="pixelpool-dev", region="eu-west-1", account="111122223333")
    context.physical["Q"] = {"Ref": "https://q", "Arn": "arn:aws:sqs:eu-west-1:111122223333:q"}
    assert context.resolve({"Fn::Sub": "${AWS::StackName}-share-${AWS::AccountId}"}) == "pixelpool-dev-share-111122223333"
    assert context.resolve({"Fn::Sub": "${Q.Arn}/x/${!Literal}"}) == "arn:aws:sqs:eu-west-1:111122223333:q/x/${Literal}"
    assert context.resolve({"Fn::Join": ["/", [{"Ref": "Q"}, "a"]]}) == "https://q/a"
    assert context.resolve({"Fn::GetAtt": ["RunProbe", "Arn"]}).endswith(":function:pixelpool-dev-RunProbe")
