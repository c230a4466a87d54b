-- One database per service: a service never reads another's tables.
CREATE DATABASE crm_contacts;
CREATE DATABASE crm_customer360;
CREATE DATABASE crm_gateway;
CREATE DATABASE crm_pipeline;
CREATE DATABASE crm_tickets;
CREATE DATABASE crm_loyalty;
CREATE DATABASE crm_alerts;
CREATE DATABASE crm_analytics;
