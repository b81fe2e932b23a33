"""Create the template's resources in the emulator, as CloudFormation would on AWS.

The same rendered `infra/template.json` that `make package` deploys is walked here: tables,
buckets (with their notifications, versioning and CORS), queues (with redrive), secrets and state
machines (with `DefinitionSubstitutions`) become the matching API calls, in dependency order. Intrinsic
functions are resolved against local names. Resource types with no local meaning are listed in
`NOT_EMULATED`; any other unknown type is an error, so the two never drift apart silently.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from graphlib import TopologicalSorter
from typing import Any, Callable


# IAM is not enforced by the emulator; Cognito is replaced by the local token issuer; the
# gateway responses are mirrored by the local gateway (infra/local/gateway.py). Alarms, their
# topic and log groups watch metrics and logs that only AWS produces (nothing local emits
# CloudWatch metrics or reads a log group), and creating them on every reset would cost each
# test some 25 emulator requests.
NOT_EMULATED = {
    "AWS::IAM::Role",
    "AWS::SQS::QueuePolicy",
    "AWS::Cognito::UserPool",
    "AWS::Cognito::UserPoolClient",
    "AWS::Cognito::UserPoolGroup",
    "AWS::ApiGateway::GatewayResponse",
    "AWS::CloudWatch::Alarm",
    "AWS::SNS::Topic",
    "AWS::Logs::LogGroup",
}
SUB_VARIABLE = re.compile(r"\$\{(?!!)([A-Za-z0-9:._]+)\}")


@dataclass
class Context:
    stack: str
    region: str
    account: str
    physical: dict[str, dict[str, str]] = field(default_factory=dict)  # logical id → {"Ref": …, attrs}

    def pseudo(self, name: str) -> str:
        return {
            "AWS::StackName": self.stack,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }[name]

    def ref(self, name: str) -> str:
        if name.startswith("AWS::"):
            return self.pseudo(name)
        return self.attribute(name, "Ref")

    def attribute(self, logical_id: str, attr: str) -> str:
        if logical_id in self.physical:
            return self.physical[logical_id][attr]
        if attr in ("Arn", "Ref"):
            # Not in the merge template: a function `chalice package` generates. Locally it is
            # named after its logical id; the Lambda dispatcher knows both spellings.
            return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.stack}-{logical_id}"
        raise KeyError(f"{logical_id}.{attr} is not known locally")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical_id, attr = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.attribute(logical_id, attr)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return self._sub(text, variables)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(self.resolve(items))
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, text: str, variables: dict[str, str]) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name in variables:
                return variables[name]
            if "." in name and not name.startswith("AWS::"):
                return self.attribute(*name.split(".", 1))
            return self.ref(name)

        return SUB_VARIABLE.sub(replace, text).replace("${!", "${")


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= _references(item)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0] if isinstance(arg, list) else arg.split(".", 1)[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                found |= {name.split(".", 1)[0] for name in SUB_VARIABLE.findall(text)}
                found |= _references(arg[1] if isinstance(arg, list) else None)
            else:
                found |= _references(arg)
    return found


class Provisioner:
    def __init__(self, clients: Callable[[str], Any], context: Context) -> None:
        self._client = clients
        self.context = context
        self._creators = {
            "AWS::DynamoDB::Table": self._table,
            "AWS::S3::Bucket": self._bucket,
            "AWS::SQS::Queue": self._queue,
            "AWS::StepFunctions::StateMachine": self._state_machine,
            "AWS::SecretsManager::Secret": self._secret,
        }

    def apply(self, template: dict) -> dict[str, str]:
        """Create every emulated resource; returns the functions' resolved environment variables."""
        resources = {lid: res for lid, res in template["Resources"].items() if "Type" in res}
        unknown = {res["Type"] for res in resources.values()} - set(self._creators) - NOT_EMULATED
        if unknown:
            raise ValueError(f"infra/template.json has resource types the local stack cannot create: {sorted(unknown)}")
        created = {lid for lid, res in resources.items() if res["Type"] in self._creators}
        for lid, res in resources.items():
            if res["Type"] in NOT_EMULATED:
                self.context.physical[lid] = {"Ref": f"local-{lid}", "Arn": f"arn:aws:local:::{lid}"}
        graph = {
            lid: (_references(resources[lid].get("Properties", {})) | set(_depends_on(resources[lid]))) & created
            for lid in created
        }
        for lid in TopologicalSorter(graph).static_order():
            resource = resources[lid]
            self._creators[resource["Type"]](lid, resource.get("Properties", {}))
        variables = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        return {name: str(self.context.resolve(value)) for name, value in variables.items()}

    def _name(self, lid: str, properties: dict, key: str) -> str:
        return self.context.resolve(properties[key]) if key in properties else f"{self.context.stack}-{lid}"

    def _table(self, lid: str, props: dict) -> None:
        name = self._name(lid, props, "TableName")
        params = {k: props[k] for k in ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
                                         "LocalSecondaryIndexes", "ProvisionedThroughput") if k in props}
        self._client("dynamodb").create_table(TableName=name, **params)
        if props.get("TimeToLiveSpecification"):
            self._client("dynamodb").update_time_to_live(
                TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )
        arn = f"arn:aws:dynamodb:{self.context.region}:{self.context.account}:table/{name}"
        self.context.physical[lid] = {"Ref": name, "Arn": arn, "StreamArn": f"{arn}/stream/local"}

    def _bucket(self, lid: str, props: dict) -> None:
        name = self._name(lid, props, "BucketName").lower()
        s3 = self._client("s3")
        s3.create_bucket(Bucket=name)
        self.context.physical[lid] = {"Ref": name, "Arn": f"arn:aws:s3:::{name}", "DomainName": f"{name}.s3.amazonaws.com"}
        if props.get("VersioningConfiguration"):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": props["VersioningConfiguration"]["Status"]})
        if props.get("CorsConfiguration"):
            # CloudFormation's names of the two keys S3's API spells otherwise.
            renamed = {"MaxAge": "MaxAgeSeconds", "ExposedHeaders": "ExposeHeaders"}
            rules = [{renamed.get(k, k): v for k, v in rule.items()} for rule in props["CorsConfiguration"]["CorsRules"]]
            s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
        if props.get("LifecycleConfiguration"):
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
                {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")},
                 **({"AbortIncompleteMultipartUpload": rule["AbortIncompleteMultipartUpload"]}
                    if "AbortIncompleteMultipartUpload" in rule else {}),
                 **({"Expiration": {"Days": rule["ExpirationInDays"]}} if "ExpirationInDays" in rule else {})}
                for rule in props["LifecycleConfiguration"]["Rules"]]})
        queues = props.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        if queues:
            configurations = []
            for entry in queues:
                configuration = {"QueueArn": self.context.resolve(entry["Queue"]), "Events": [entry["Event"]]}
                if "Filter" in entry:
                    configuration["Filter"] = {"Key": {"FilterRules": entry["Filter"]["S3Key"]["Rules"]}}
                configurations.append(configuration)
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"QueueConfigurations": configurations}
            )

    def _queue(self, lid: str, props: dict) -> None:
        name = self._name(lid, props, "QueueName")
        attributes = {}
        for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
            if key in props:
                attributes[key] = str(props[key])
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(self.context.resolve(props["RedrivePolicy"]))
        url = self._client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = f"arn:aws:sqs:{self.context.region}:{self.context.account}:{name}"
        self.context.physical[lid] = {"Ref": url, "Arn": arn, "QueueName": name, "QueueUrl": url}

    def _state_machine(self, lid: str, props: dict) -> None:
        name = self._name(lid, props, "StateMachineName")
        substitutions = self.context.resolve(props.get("DefinitionSubstitutions", {}))
        definition = json.dumps(props["Definition"])
        for key, value in substitutions.items():
            definition = definition.replace("${%s}" % key, str(value))
        arn = self._client("stepfunctions").create_state_machine(
            name=name,
            definition=definition,
            roleArn=f"arn:aws:iam::{self.context.account}:role/{name}",
            type=props.get("StateMachineType", "STANDARD"),
        )["stateMachineArn"]
        self.context.physical[lid] = {"Ref": arn, "Arn": arn, "Name": name}


    def _secret(self, lid: str, props: dict) -> None:
        name = self._name(lid, props, "Name")
        params = {"Name": name, "Description": props.get("Description", "")}
        if "SecretString" in props:
            params["SecretString"] = self.context.resolve(props["SecretString"])
        arn = self._client("secretsmanager").create_secret(**params)["ARN"]
        # CloudFormation: `Ref` of a secret is its ARN.
        self.context.physical[lid] = {"Ref": arn, "Arn": arn, "Id": arn}


def _depends_on(resource: dict) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)
