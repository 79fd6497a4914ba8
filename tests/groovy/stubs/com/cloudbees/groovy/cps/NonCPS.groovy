package com.cloudbees.groovy.cps

import java.lang.annotation.ElementType
import java.lang.annotation.Retention
import java.lang.annotation.RetentionPolicy
import java.lang.annotation.Target

/**
 * Stand-in for workflow-cps's annotation, so vars/ scripts compile outside
 * Jenkins. The harness runs everything as plain Groovy; the convention test
 * checks that @NonCPS methods call no pipeline steps.
 */
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
@interface NonCPS {
}
